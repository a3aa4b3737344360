//! Unit tests of the tracker on hand-made records: sessions, the process table and ancestry.

use super::*;
use agent_common::{ExecRecord, ExitRecord, ForkRecord, OpenRecord, RecordHeader};
use agent_model::decode::{body_bytes, decode, encode};

struct NoAgents;
impl Agents for NoAgents {
    fn name(&self, id: u32) -> String {
        format!("agent{id}")
    }
    fn confirm_exe(&self, _id: u32, exe: &str) -> bool {
        exe.ends_with("/good")
    }
}

/// A tracker with a fixed clock: boot time 0 is 2024-01-01T00:00:00Z.
fn tracker() -> Tracker {
    Tracker::new(
        "h".into(),
        Box::new(FixedClock {
            boot_offset_ns: 1_704_067_200_000_000_000,
            now: Timestamp(1_704_067_200_000_000_000),
        }),
    )
    .with_instance(1)
}

fn hdr(kind: RecordKind, tgid: u32, start: u64, ppid: u32, session: u64) -> RecordHeader {
    RecordHeader {
        kind: kind as u32,
        tgid,
        pid: tgid,
        start_ns: start,
        ppid,
        session_id: session,
        agent_id: 1,
        ..Default::default()
    }
}

fn exec(tgid: u32, start: u64, ppid: u32, session: u64, exe: &[u8], flags: u32) -> Record {
    let tail = [exe, b"\0"].concat();
    let body = ExecRecord {
        exe_len: tail.len() as u32,
        flags,
        ..Default::default()
    };
    decode(&encode(
        &hdr(RecordKind::Exec, tgid, start, ppid, session),
        &body_bytes(&body),
        &tail,
    ))
    .unwrap()
}

fn fork(tgid: u32, start: u64, ppid: u32, pstart: u64, session: u64) -> Record {
    let body = ForkRecord {
        parent_start_ns: pstart,
        ..Default::default()
    };
    decode(&encode(
        &hdr(RecordKind::Fork, tgid, start, ppid, session),
        &body_bytes(&body),
        &[],
    ))
    .unwrap()
}

fn exit(tgid: u32, start: u64, ppid: u32, session: u64) -> Record {
    decode(&encode(
        &hdr(RecordKind::Exit, tgid, start, ppid, session),
        &body_bytes(&ExitRecord::default()),
        &[],
    ))
    .unwrap()
}

/// An open of `/etc/passwd` by (tgid, start), whose parent is now `ppid`.
fn open(tgid: u32, start: u64, ppid: u32, session: u64) -> Record {
    let tail = b"passwd\0etc\0";
    let body = OpenRecord {
        path_len: tail.len() as u32,
        ..Default::default()
    };
    decode(&encode(
        &hdr(RecordKind::Open, tgid, start, ppid, session),
        &body_bytes(&body),
        tail,
    ))
    .unwrap()
}

#[test]
fn ancestry_follows_the_chain_to_the_session_root() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(11, 2, 10, 1, 7), &NoAgents);
    t.on_record(exec(11, 2, 10, 7, b"bash\0bin", 0), &NoAgents);
    t.on_record(fork(12, 3, 11, 2, 7), &NoAgents);
    let (evs, _) = t.on_record(exec(12, 3, 11, 7, b"cat\0bin", 0), &NoAgents);
    let ev = evs.last().unwrap();
    assert_eq!(ev.process.exe, BStr::from("/bin/cat"));
    assert_eq!(ev.parent.as_ref().unwrap().exe, BStr::from("/bin/bash"));
    assert_eq!(
        ev.ancestry,
        vec![BStr::from("/bin/bash"), BStr::from("/bin/agent")]
    );
    assert_eq!(ev.agent.as_ref().unwrap().name, "agent1");
}

#[test]
fn pid_reuse_does_not_mix_identities() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(20, 5, 10, 1, 7), &NoAgents);
    t.on_record(exec(20, 5, 10, 7, b"old\0bin", 0), &NoAgents);
    // pid 20 is reused by a new process with another start time.
    t.on_record(fork(20, 9, 10, 1, 7), &NoAgents);
    let (evs, _) = t.on_record(exec(20, 9, 10, 7, b"new\0bin", 0), &NoAgents);
    let ev = evs.last().unwrap();
    assert_eq!(ev.process.exe, BStr::from("/bin/new"));
    assert_eq!(ev.process.start, t.ts(9));
    assert!(t.procs.get(&(20, 5)).unwrap().exited);
    assert_eq!(t.procs.get(&(20, 5)).unwrap().exe, BStr::from("/bin/old"));
}

#[test]
fn unconfirmed_provisional_session_is_dropped_with_its_events() {
    let mut t = tracker();
    let (evs, acts) = t.on_record(
        exec(30, 1, 1, 9, b"bad\0x", REC_NEW_SESSION | REC_PROVISIONAL),
        &NoAgents,
    );
    assert!(evs.is_empty());
    assert_eq!(acts, vec![Action::Drop(vec![30])]);
    let (evs, _) = t.on_record(fork(31, 2, 30, 1, 9), &NoAgents);
    assert!(evs.is_empty());
    let (evs, acts) = t.on_record(
        exec(40, 1, 1, 10, b"good\0x", REC_NEW_SESSION | REC_PROVISIONAL),
        &NoAgents,
    );
    assert_eq!(evs.len(), 2, "session.start and process.exec");
    assert_eq!(acts, vec![Action::Confirm(40, 10, 1)]);
}

#[test]
fn a_fork_joins_the_session_of_its_parent_with_its_image() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    let (evs, _) = t.on_record(fork(11, 2, 10, 1, 7), &NoAgents);
    assert_eq!(evs.len(), 1);
    let ev = &evs[0];
    assert_eq!(ev.kind(), Kind::ProcessFork);
    assert_eq!(ev.session.as_ref().unwrap().id, session_id_string(7));
    assert_eq!(ev.agent.as_ref().unwrap().name, "agent1");
    // Until it execs, the child runs its parent's image.
    assert_eq!(ev.process.exe, BStr::from("/bin/agent"));
    assert_eq!(ev.parent.as_ref().unwrap().pid, 10);
    assert_eq!(ev.ancestry, vec![BStr::from("/bin/agent")]);
    assert_eq!(t.sessions[&7].live, 2);
    assert_eq!(t.sessions[&7].events, 2);
    assert!(t.is_live(11, 2));
}

#[test]
fn a_reused_pid_with_a_new_start_time_is_a_new_process() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(20, 5, 10, 1, 7), &NoAgents);
    t.on_record(exec(20, 5, 10, 7, b"old\0bin", 0), &NoAgents);
    // The old pid 20 exits unseen (its exit record lost); a new process gets pid 20.
    let (evs, _) = t.on_record(open(20, 9, 10, 7), &NoAgents);
    let ev = &evs[0];
    assert_eq!(ev.process.start, t.ts(9));
    assert_eq!(
        ev.process.exe,
        BStr::default(),
        "the new process does not inherit the old one's image"
    );
    assert!(t.is_live(20, 9));
    assert!(!t.is_live(20, 5));
}

#[test]
fn ancestry_stops_at_the_session_root() {
    let mut t = tracker();
    // pid 5, outside any session, starts the agent.
    t.on_record(exec(5, 1, 1, 3, b"shell\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(exec(10, 2, 5, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(11, 3, 10, 2, 7), &NoAgents);
    let (evs, _) = t.on_record(exec(11, 3, 10, 7, b"cat\0bin", 0), &NoAgents);
    let ev = evs.last().unwrap();
    assert_eq!(ev.ancestry, vec![BStr::from("/bin/agent")]);
    // The root's own parent is known but in another session: named as parent, not ancestor.
    let (evs, _) = t.on_record(open(10, 2, 5, 7), &NoAgents);
    assert_eq!(
        evs[0].parent.as_ref().unwrap().exe,
        BStr::from("/bin/shell")
    );
    assert!(evs[0].ancestry.is_empty());
}

#[test]
fn an_orphan_keeps_the_ancestry_of_its_exited_parent() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(11, 2, 10, 1, 7), &NoAgents);
    t.on_record(exec(11, 2, 10, 7, b"bash\0bin", 0), &NoAgents);
    t.on_record(fork(12, 3, 11, 2, 7), &NoAgents);
    t.on_record(exec(12, 3, 11, 7, b"sleep\0bin", 0), &NoAgents);
    let (evs, _) = t.on_record(exit(11, 2, 10, 7), &NoAgents);
    assert_eq!(evs.len(), 1, "the session goes on: no session.end");
    assert!(!t.is_live(11, 2));
    // pid 12 is reparented to init: its records now say ppid 1.
    let (evs, _) = t.on_record(open(12, 3, 1, 7), &NoAgents);
    let ev = &evs[0];
    assert_eq!(ev.parent.as_ref().unwrap().exe, BStr::from("/bin/bash"));
    assert_eq!(
        ev.ancestry,
        vec![BStr::from("/bin/bash"), BStr::from("/bin/agent")]
    );
}

#[test]
fn the_last_exit_ends_the_session_and_forgets_its_processes() {
    let mut t = tracker();
    t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    t.on_record(fork(11, 2, 10, 1, 7), &NoAgents);
    let (evs, _) = t.on_record(exit(11, 2, 10, 7), &NoAgents);
    assert_eq!(evs.len(), 1);
    let (evs, _) = t.on_record(exit(10, 1, 1, 7), &NoAgents);
    let kinds: Vec<_> = evs.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, vec![Kind::ProcessExit, Kind::SessionEnd]);
    assert!(t.sessions.is_empty());
    assert!(t.procs.get(&(10, 1)).is_none());
    assert!(t.procs.get(&(11, 2)).is_none());
}

#[test]
fn times_and_ids_come_from_the_clock_and_the_instance() {
    let mut t = tracker();
    let (evs, _) = t.on_record(exec(10, 1, 1, 7, b"agent\0bin", REC_NEW_SESSION), &NoAgents);
    assert_eq!(evs[0].id, "00000001-1");
    assert_eq!(evs[1].id, "00000001-2");
    // Record times are boot times (here 0) plus the clock's offset.
    assert_eq!(evs[1].time.to_rfc3339(), "2024-01-01T00:00:00Z");
    assert_eq!(evs[1].process.start, Timestamp(1_704_067_200_000_000_001));
    let ev = t.monitor_event(Kind::MonitorLoss, Monitor::default());
    assert_eq!(ev.time, Timestamp(1_704_067_200_000_000_000));
}
