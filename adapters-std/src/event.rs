//! The Segment-shaped event an application tracks, and its stored form.
//!
//! The stored payload is the final JSON of the event, `messageId` and
//! `timestamp` included, so a batch body is just the stored payloads joined
//! with commas, and a re-sent event is byte-identical to its first send: the
//! server can deduplicate by `messageId`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Segment's call types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An action the user performed (the default).
    #[default]
    Track,
    /// Who the user is.
    Identify,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// The user joined a group.
    Group,
    /// Two identities are one.
    Alias,
}

/// One event, with Segment's field names on the wire.
///
/// ```
/// use outbox_std::Event;
/// use serde_json::json;
///
/// let e = Event::track("Order Completed")
///     .user_id("u-1")
///     .properties(json!({"total": 12.5}));
/// let payload = e.into_payload(32 * 1024).unwrap();
/// let v: serde_json::Value = serde_json::from_slice(&payload.bytes).unwrap();
/// assert_eq!(v["type"], "track");
/// assert_eq!(v["event"], "Order Completed");
/// assert_eq!(v["messageId"].as_str().unwrap().len(), 36);   // a UUID was set
/// assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));  // RFC 3339, UTC
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The call type.
    #[serde(rename = "type", default)]
    pub kind: EventType,
    /// The event name (required for `track`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The page or screen name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The known user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The anonymous visitor (one of `userId` and `anonymousId` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Event properties: a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// User traits (identify, group): a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Value>,
    /// Context (device, app, library...): a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// When it happened, RFC 3339; set at track time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// A unique id for deduplication; a UUID is set at track time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Any other Segment field (`groupId`, `previousId`, `integrations`...),
    /// passed through as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why an event was refused at track time; nothing was stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The serialized event is over the configured `max_event_bytes`.
    #[error("event of {size} bytes is over the {max}-byte limit; not stored")]
    TooLarge {
        /// Its size, serialized.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// `properties`, `traits` or `context` is not a JSON object.
    #[error("`{field}` must be a JSON object")]
    NotAnObject {
        /// The field.
        field: &'static str,
    },
    /// Neither `userId` nor `anonymousId` is set.
    #[error("an event needs a userId or an anonymousId")]
    NoIdentity,
    /// A `track` event without an `event` name.
    #[error("a track event needs an event name")]
    NoEventName,
    /// The event could not be serialized.
    #[error("the event cannot be serialized: {0}")]
    Serialize(String),
}

/// An event ready for the store: its final bytes and its `messageId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The event's JSON, as it will be sent.
    pub bytes: Vec<u8>,
    /// Its `messageId`.
    pub message_id: String,
}

impl Event {
    /// A `track` event named `name`.
    pub fn track(name: impl Into<String>) -> Self {
        Event {
            kind: EventType::Track,
            event: Some(name.into()),
            ..Event::default()
        }
    }

    /// An event of another type (`identify`, `page`, ...).
    pub fn of_type(kind: EventType) -> Self {
        Event {
            kind,
            ..Event::default()
        }
    }

    /// Set `userId`.
    #[must_use]
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Set `anonymousId`.
    #[must_use]
    pub fn anonymous_id(mut self, id: impl Into<String>) -> Self {
        self.anonymous_id = Some(id.into());
        self
    }

    /// Set `properties` (must be a JSON object).
    #[must_use]
    pub fn properties(mut self, p: Value) -> Self {
        self.properties = Some(p);
        self
    }

    /// Set `context` (must be a JSON object).
    #[must_use]
    pub fn context(mut self, c: Value) -> Self {
        self.context = Some(c);
        self
    }

    /// Set `messageId` (otherwise a UUID v4 is set at track time).
    #[must_use]
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Set `timestamp` (RFC 3339; otherwise the time of tracking).
    #[must_use]
    pub fn timestamp(mut self, t: impl Into<String>) -> Self {
        self.timestamp = Some(t.into());
        self
    }

    /// Check the event, fill in `messageId` and `timestamp` when absent, and
    /// serialize it; refuses it when the result is over `max_bytes`.
    pub fn into_payload(self, max_bytes: usize) -> Result<Payload, EventError> {
        // Most events fit without growing the buffer.
        let mut bytes = Vec::with_capacity(512);
        let message_id = self.write_payload(&mut bytes, max_bytes)?;
        Ok(Payload { bytes, message_id })
    }

    /// [`into_payload`](Self::into_payload) into `buf` (cleared first), so a
    /// caller can reuse one allocation; returns the `messageId`.
    pub(crate) fn write_payload(
        mut self,
        buf: &mut Vec<u8>,
        max_bytes: usize,
    ) -> Result<String, EventError> {
        for (field, value) in [
            ("properties", &self.properties),
            ("traits", &self.traits),
            ("context", &self.context),
        ] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(EventError::NotAnObject { field });
            }
        }
        let blank = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
        if blank(&self.user_id) && blank(&self.anonymous_id) {
            return Err(EventError::NoIdentity);
        }
        if self.kind == EventType::Track && blank(&self.event) {
            return Err(EventError::NoEventName);
        }
        if blank(&self.message_id) {
            // uuid's `fast-rng`: a thread-local generator seeded from the OS,
            // not a getrandom system call per event.
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated();
            self.message_id = Some(id.encode_lower(&mut text).to_owned());
        }
        if blank(&self.timestamp) {
            self.timestamp = Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        }
        buf.clear();
        serde_json::to_writer(&mut *buf, &self)
            .map_err(|e| EventError::Serialize(e.to_string()))?;
        if buf.len() > max_bytes {
            return Err(EventError::TooLarge {
                size: buf.len(),
                max: max_bytes,
            });
        }
        Ok(self.message_id.take().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_ids_are_kept_and_fields_use_segment_names() {
        let p = Event::track("x")
            .anonymous_id("a")
            .message_id("m-1")
            .timestamp("2026-01-01T00:00:00Z")
            .into_payload(1000)
            .unwrap();
        assert_eq!(p.message_id, "m-1");
        let v: Value = serde_json::from_slice(&p.bytes).unwrap();
        assert_eq!(
            v,
            json!({"type":"track","event":"x","anonymousId":"a","messageId":"m-1",
                   "timestamp":"2026-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn validation_errors() {
        let e = Event::track("x").user_id("u");
        assert_eq!(
            e.clone().properties(json!([1])).into_payload(1000),
            Err(EventError::NotAnObject {
                field: "properties"
            })
        );
        assert_eq!(
            Event::track("x").into_payload(1000),
            Err(EventError::NoIdentity)
        );
        assert_eq!(
            Event::of_type(EventType::Track)
                .user_id("u")
                .into_payload(1000),
            Err(EventError::NoEventName)
        );
        assert!(matches!(
            e.properties(json!({"s": "y".repeat(200)}))
                .into_payload(100),
            Err(EventError::TooLarge { max: 100, .. })
        ));
    }

    #[test]
    fn unknown_fields_pass_through() {
        let e: Event =
            serde_json::from_str(r#"{"type":"group","groupId":"g","userId":"u","traits":{"n":1}}"#)
                .unwrap();
        assert_eq!(e.kind, EventType::Group);
        let v: Value = serde_json::from_slice(&e.into_payload(1000).unwrap().bytes).unwrap();
        assert_eq!(v["groupId"], "g");
        assert_eq!(v["traits"]["n"], 1);
    }
}
