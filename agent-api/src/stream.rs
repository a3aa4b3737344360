//! Items of a `subscribe` stream, after its `{"ok": true}`: an event object (the same JSON as
//! `--events-jsonl`), `{"alert": {...}}`, or `{"lagged": N}` when the client fell behind.

use agent_model::{Alert, Event};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One line of a live stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    Event(Box<Event>),
    Alert(Box<Alert>),
    /// The client fell this many items behind; they are gone.
    Lagged(u64),
}

#[derive(Serialize)]
struct AlertRef<'a> {
    alert: &'a Alert,
}

#[derive(Serialize)]
struct Lagged {
    lagged: u64,
}

impl Serialize for StreamItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StreamItem::Event(e) => e.serialize(s),
            StreamItem::Alert(alert) => AlertRef { alert }.serialize(s),
            StreamItem::Lagged(lagged) => Lagged { lagged: *lagged }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for StreamItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if let Some(n) = v.get("lagged") {
            return u64::deserialize(n)
                .map(StreamItem::Lagged)
                .map_err(D::Error::custom);
        }
        if let Some(a) = v.get("alert") {
            return Alert::deserialize(a)
                .map(|a| StreamItem::Alert(Box::new(a)))
                .map_err(D::Error::custom);
        }
        Event::deserialize(&v)
            .map(|e| StreamItem::Event(Box::new(e)))
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_round_trips_in_its_documented_shape() {
        let items = [
            StreamItem::Event(Box::new(Event {
                id: "e-1".into(),
                ..Default::default()
            })),
            StreamItem::Alert(Box::new(Alert {
                id: "a-1".into(),
                ..Default::default()
            })),
            StreamItem::Lagged(5),
        ];
        let lines: Vec<String> = items
            .iter()
            .map(|i| serde_json::to_string(i).unwrap())
            .collect();
        assert!(
            lines[1].starts_with(r#"{"alert":{"id":"a-1""#),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], r#"{"lagged":5}"#);
        for (l, i) in lines.iter().zip(&items) {
            assert_eq!(&serde_json::from_str::<StreamItem>(l).unwrap(), i);
        }
    }
}
