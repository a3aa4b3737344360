//! What the store hands out and the daemon sends unchanged: stored items (an event or an alert),
//! search hits with their triage, aggregations, and session listings and timelines.
//!
//! A hit is an event object as it was stored, or `{"alert": {...}, "triage": {...}}`: the two
//! shapes are told apart by the `alert` key, which no event has.

use agent_model::{Alert, Event, Timestamp};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Triage state of an alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriageState {
    #[default]
    Open,
    Acknowledged,
    Resolved,
}

impl TriageState {
    pub const fn name(self) -> &'static str {
        match self {
            TriageState::Open => "open",
            TriageState::Acknowledged => "acknowledged",
            TriageState::Resolved => "resolved",
        }
    }

    /// `open`, `acknowledged` (or `ack`), `resolved`, any case.
    pub fn from_name(s: &str) -> Option<TriageState> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Some(TriageState::Open),
            "acknowledged" | "ack" | "acked" => Some(TriageState::Acknowledged),
            "resolved" | "resolve" => Some(TriageState::Resolved),
            _ => None,
        }
    }
}

/// A triage change of an alert: as stored in the spool, and as sent with an alert hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageEntry {
    pub alert_id: String,
    pub state: TriageState,
    pub note: String,
    /// Who made the change (`uid:N` for a change through the daemon).
    pub by: String,
    pub time: Timestamp,
}

/// A stored item: an event or an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Event(Box<Event>),
    Alert(Box<Alert>),
}

impl Item {
    pub fn time(&self) -> Timestamp {
        match self {
            Item::Event(e) => e.time,
            Item::Alert(a) => a.time,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Item::Event(e) => &e.id,
            Item::Alert(a) => &a.id,
        }
    }
}

/// One result of a search, an alert listing or a session timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub item: Item,
    /// Latest triage change, for alerts that have one (always `None` for events).
    pub triage: Option<TriageEntry>,
}

impl Hit {
    /// Triage state (alerts without a change are open; events have none).
    pub fn triage_state(&self) -> Option<TriageState> {
        match self.item {
            Item::Alert(_) => Some(self.triage.as_ref().map(|t| t.state).unwrap_or_default()),
            Item::Event(_) => None,
        }
    }
}

/// The triage of an alert never triaged, on the wire.
#[derive(Serialize)]
struct NeverTriaged {
    state: TriageState,
}

#[derive(Serialize)]
struct AlertHitRef<'a, T: Serialize> {
    alert: &'a Alert,
    triage: T,
}

impl Serialize for Hit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.item, &self.triage) {
            (Item::Event(e), _) => e.serialize(s),
            (Item::Alert(alert), Some(t)) => AlertHitRef { alert, triage: t }.serialize(s),
            (Item::Alert(alert), None) => AlertHitRef {
                alert,
                triage: NeverTriaged {
                    state: TriageState::Open,
                },
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Hit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let Some(a) = v.get("alert") else {
            let e = Event::deserialize(&v).map_err(D::Error::custom)?;
            return Ok(Hit {
                item: Item::Event(Box::new(e)),
                triage: None,
            });
        };
        let alert = Alert::deserialize(a).map_err(D::Error::custom)?;
        let triage = match v.get("triage") {
            None | Some(Value::Null) => None,
            Some(t) if t.get("alert_id").is_some() => {
                Some(TriageEntry::deserialize(t).map_err(D::Error::custom)?)
            }
            // `{"state": ...}` alone: never triaged (or a server that sends the state only).
            Some(t) => {
                let state = t
                    .get("state")
                    .map(TriageState::deserialize)
                    .transpose()
                    .map_err(D::Error::custom)?
                    .unwrap_or_default();
                (state != TriageState::Open).then(|| TriageEntry {
                    alert_id: alert.id.clone(),
                    state,
                    note: String::new(),
                    by: String::new(),
                    time: alert.time,
                })
            }
        };
        Ok(Hit {
            item: Item::Alert(Box::new(alert)),
            triage,
        })
    }
}

/// An aggregation result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Aggregation {
    /// `| count`.
    Count { count: u64 },
    /// `| count by FIELD` / `| top N FIELD`: values by decreasing count.
    Terms {
        field: String,
        buckets: Vec<(String, u64)>,
        /// Matches counted in values past the limit.
        other: u64,
    },
    /// `| histogram 1m`: bucket start times in order.
    Histogram {
        interval_ns: i64,
        buckets: Vec<(Timestamp, u64)>,
    },
}

/// One session in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: String,
    pub agent: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub events: u64,
    pub alerts: u64,
    pub root_exe: Option<String>,
    pub root_pid: Option<u32>,
}

/// A process of a session's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessNode {
    pub pid: u32,
    pub start: Timestamp,
    pub exe: String,
    pub parent_pid: Option<u32>,
    pub parent_start: Option<Timestamp>,
    /// Indexes into [`SessionDetail::processes`].
    pub children: Vec<usize>,
}

/// The timeline and process tree of one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    pub id: String,
    /// Events in time order.
    pub events: Vec<Hit>,
    /// Alerts in time order.
    pub alerts: Vec<Hit>,
    /// Processes seen exec'ing or forking, in order of first sight.
    pub processes: Vec<ProcessNode>,
    /// Indexes of processes whose parent is not in the session.
    pub roots: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            id: "a-1".into(),
            rule: "r".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_untriaged_alert_hit_says_open_and_reads_back_as_untriaged() {
        let h = Hit {
            item: Item::Alert(Box::new(alert())),
            triage: None,
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["triage"], serde_json::json!({"state": "open"}));
        assert_eq!(v["alert"]["id"], "a-1");
        assert_eq!(serde_json::from_value::<Hit>(v).unwrap(), h);
    }

    #[test]
    fn a_triaged_alert_hit_carries_the_whole_change() {
        let t = TriageEntry {
            alert_id: "a-1".into(),
            state: TriageState::Resolved,
            note: "fixed".into(),
            by: "uid:0".into(),
            time: Timestamp(5),
        };
        let h = Hit {
            item: Item::Alert(Box::new(alert())),
            triage: Some(t.clone()),
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["triage"], serde_json::to_value(&t).unwrap());
        let back: Hit = serde_json::from_value(v).unwrap();
        assert_eq!(back.triage_state(), Some(TriageState::Resolved));
        assert_eq!(back, h);
    }

    #[test]
    fn an_event_hit_is_the_bare_event_object() {
        let e = Event {
            id: "e-1".into(),
            ..Default::default()
        };
        let h = Hit {
            item: Item::Event(Box::new(e.clone())),
            triage: None,
        };
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
        assert_eq!(serde_json::from_str::<Hit>(&e.to_json()).unwrap(), h);
        assert_eq!(h.triage_state(), None);
    }

    #[test]
    fn triage_names_accept_short_forms_in_any_case() {
        assert_eq!(
            TriageState::from_name("ACK"),
            Some(TriageState::Acknowledged)
        );
        assert_eq!(
            TriageState::from_name("resolve"),
            Some(TriageState::Resolved)
        );
        assert_eq!(TriageState::from_name("later"), None);
        for s in [
            TriageState::Open,
            TriageState::Acknowledged,
            TriageState::Resolved,
        ] {
            assert_eq!(TriageState::from_name(s.name()), Some(s));
        }
    }
}
