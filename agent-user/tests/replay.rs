//! Captured kernel records replayed through the decoder, the io_uring pairing and the tracker,
//! with a fixed clock and host: the events must be exactly the snapshot.
//!
//! `fixtures/session.records` was captured with `AGENTWATCH_CAPTURE_RECORDS` from the real
//! daemon while `fixtures/capture.sh` ran in an agent session (see that script to re-capture;
//! then review the snapshot diff with `cargo insta review`).

use agent_model::{Kind, Timestamp};
use agent_user::capture::{records, replay};
use agent_user::tracker::{Agents, FixedClock, Tracker};

const FIXTURE: &[u8] = include_bytes!("fixtures/session.records");

/// The agent of `agentwatch run --agent t` (the first name after the config's agents).
struct RunAgents;
impl Agents for RunAgents {
    fn name(&self, _id: u32) -> String {
        "t".into()
    }
    fn confirm_exe(&self, _id: u32, _exe: &str) -> bool {
        false
    }
}

fn tracker() -> Tracker {
    Tracker::new(
        "fixture-host".into(),
        Box::new(FixedClock {
            // Boot at 2024-01-01T00:00:00Z.
            boot_offset_ns: 1_704_067_200_000_000_000,
            now: Timestamp(1_704_067_200_000_000_000),
        }),
    )
    .with_instance(0xf1)
}

#[test]
fn the_capture_is_well_formed() {
    let recs = records(FIXTURE).unwrap();
    assert!(
        (20..=600).contains(&recs.len()),
        "{} records in the fixture",
        recs.len()
    );
    let out = replay(recs, &mut tracker(), &RunAgents);
    assert_eq!(out.decode_errors, 0);
    assert!(out.actions.is_empty(), "{:?}", out.actions);
}

#[test]
fn replayed_records_give_the_snapshot_events() {
    let out = replay(records(FIXTURE).unwrap(), &mut tracker(), &RunAgents);
    let lines: Vec<String> = out.events.iter().map(|e| e.to_json()).collect();
    insta::assert_snapshot!("session_events", lines.join("\n"));
}

#[test]
fn replaying_twice_gives_the_same_events() {
    let a = replay(records(FIXTURE).unwrap(), &mut tracker(), &RunAgents);
    let b = replay(records(FIXTURE).unwrap(), &mut tracker(), &RunAgents);
    assert_eq!(a.events, b.events);
}

#[test]
fn every_event_of_the_session_has_its_session_agent_and_process() {
    let out = replay(records(FIXTURE).unwrap(), &mut tracker(), &RunAgents);
    let kinds: std::collections::BTreeSet<_> = out.events.iter().map(|e| e.kind()).collect();
    for k in [
        Kind::ProcessExec,
        Kind::ProcessFork,
        Kind::ProcessExit,
        Kind::FileOpen,
    ] {
        assert!(kinds.contains(&k), "no `{}` event in {kinds:?}", k.name());
    }
    let sessions: std::collections::BTreeSet<_> = out
        .events
        .iter()
        .filter_map(|e| e.session.as_ref().map(|s| s.id.clone()))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    // The capture ends with the script's SIGTERM to the daemon: a process outside every session
    // that reached agentwatch itself is reported, with no session and the daemon as its target.
    let (outside, events): (Vec<_>, Vec<_>) = out.events.iter().partition(|e| e.session.is_none());
    for e in &outside {
        assert_eq!(e.kind(), Kind::ProcessSignal, "{}", e.to_json());
        assert_eq!(
            e.target.as_ref().map(|t| t.relation.as_str()),
            Some("daemon"),
            "{}",
            e.to_json()
        );
    }
    for e in events {
        assert_eq!(e.agent.as_ref().map(|a| a.name.as_str()), Some("t"));
        assert_eq!(e.host, "fixture-host");
        // `session.end` comes after the last process left the table.
        if e.kind() != Kind::SessionEnd {
            assert_ne!(e.process.pid, 0, "{}", e.to_json());
        }
    }
    // Every process after the first one has its ancestry up to the session root.
    let root = &out.events[0].process.exe;
    for e in out.events.iter().filter(|e| !e.ancestry.is_empty()) {
        assert_eq!(e.ancestry.last(), Some(root), "{}", e.to_json());
    }
}
