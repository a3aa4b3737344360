//! Byte strings that survive storage and export exactly.
//!
//! Paths and arguments come from agents and can hold any byte. [`BStr`] keeps the raw bytes and
//! serializes them as a JSON string when they are valid UTF-8, else as `{"b64": "...",
//! "text": "<lossy>"}` so that nothing is lost and ordinary values stay ordinary.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An owned byte string, usually but not always UTF-8.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BStr(pub Vec<u8>);

impl BStr {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text; invalid UTF-8 sequences become U+FFFD. Matching and display use this.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// True when the bytes are valid UTF-8.
    pub fn is_utf8(&self) -> bool {
        std::str::from_utf8(&self.0).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for BStr {
    fn from(s: &str) -> Self {
        BStr(s.as_bytes().to_vec())
    }
}

impl From<String> for BStr {
    fn from(s: String) -> Self {
        BStr(s.into_bytes())
    }
}

impl From<&[u8]> for BStr {
    fn from(s: &[u8]) -> Self {
        BStr(s.to_vec())
    }
}

impl From<Vec<u8>> for BStr {
    fn from(s: Vec<u8>) -> Self {
        BStr(s)
    }
}

impl fmt::Debug for BStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

impl fmt::Display for BStr {
    /// Lossy text. Callers that draw on a terminal must escape it (see `tui`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl Serialize for BStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("b64", &B64.encode(&self.0))?;
                m.serialize_entry("text", &self.to_str_lossy())?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for BStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object with `b64`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BStr, E> {
                Ok(BStr::from(v))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<BStr, E> {
                Ok(BStr::from(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BStr, A::Error> {
                let mut bytes = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "b64" {
                        let s: String = map.next_value()?;
                        bytes = Some(B64.decode(s.as_bytes()).map_err(de::Error::custom)?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                bytes
                    .map(BStr)
                    .ok_or_else(|| de::Error::missing_field("b64"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utf8_serializes_as_plain_string() {
        let s = serde_json::to_string(&BStr::from("/home/a b/.ssh/id_rsa")).unwrap();
        assert_eq!(s, "\"/home/a b/.ssh/id_rsa\"");
    }

    #[test]
    fn invalid_utf8_round_trips_exactly() {
        let raw = BStr(vec![b'/', 0xff, 0xfe, b'\x1b', b'[', b'2', b'J']);
        let s = serde_json::to_string(&raw).unwrap();
        assert!(s.contains("\"b64\""), "{s}");
        let back: BStr = serde_json::from_str(&s).unwrap();
        assert_eq!(back, raw);
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let b = BStr(bytes);
            let s = serde_json::to_string(&b).unwrap();
            let back: BStr = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(back, b);
        }
    }
}
