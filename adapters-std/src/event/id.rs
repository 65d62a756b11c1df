//! Segment ids (`userId`, `anonymousId`, `messageId`, `groupId`,
//! `previousId`) are strings on the wire. SDKs accept numbers too and turn
//! them into their decimal text: analytics-python's `stringify_id` does
//! `str(val)` for anything that is not already a string (`client.py`), so
//! `42` is sent as `"42"`. outbox does the same, both for ids given in Rust
//! ([`Id`]) and for ids read from JSON (a number keeps the exact text it was
//! written with, thanks to serde_json's `arbitrary_precision`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An id as Segment wants it: a string. Built from a string or from any
/// integer, which becomes its decimal text.
///
/// ```
/// use outbox_std::Event;
/// let e = Event::identify().user_id(42u64);
/// assert_eq!(e.user_id.as_deref(), Some("42"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(pub(crate) String);

impl Id {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id(s.to_string())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id(s)
    }
}

impl From<&String> for Id {
    fn from(s: &String) -> Self {
        Id(s.clone())
    }
}

macro_rules! id_from_integers {
    ($($t:ty),*) => {$(
        impl From<$t> for Id {
            fn from(n: $t) -> Self {
                Id(n.to_string())
            }
        }
    )*};
}
id_from_integers!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// A JSON id: a string as is, a number as the text it was written with,
/// `null` as absent; anything else is refused.
pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format_args!(
            "an id must be a string or a number, not {}",
            match other {
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "optional")]
        id: Option<String>,
    }

    fn id(json: &str) -> Result<Option<String>, serde_json::Error> {
        serde_json::from_str::<T>(json).map(|t| t.id)
    }

    #[test]
    fn numbers_become_their_exact_text() {
        assert_eq!(id(r#"{"id":"u-1"}"#).unwrap().as_deref(), Some("u-1"));
        assert_eq!(id(r#"{"id":42}"#).unwrap().as_deref(), Some("42"));
        // A 30-digit id keeps every digit (no 1.2345678901234568e+29).
        assert_eq!(
            id(r#"{"id":123456789012345678901234567890}"#)
                .unwrap()
                .as_deref(),
            Some("123456789012345678901234567890")
        );
        assert_eq!(id(r#"{"id":1.50}"#).unwrap().as_deref(), Some("1.50"));
        assert_eq!(id(r#"{"id":null}"#).unwrap(), None);
        assert_eq!(id(r#"{}"#).unwrap(), None);
        assert!(id(r#"{"id":true}"#).is_err());
        assert!(id(r#"{"id":{}}"#).is_err());
        assert_eq!(Id::from(-7i32).as_str(), "-7");
    }
}
