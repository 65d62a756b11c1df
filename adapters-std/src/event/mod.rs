//! The Segment-shaped event an application tracks, and its stored form.
//!
//! One constructor per Segment call (`track`, `identify`, `page`, `screen`,
//! `group`, `alias`) and setters for every field, checked the way Segment's
//! HTTP Tracking API and its SDKs check them (analytics-python's
//! `client.py`: an id is required, `event` for track, `groupId` for group,
//! `userId` and `previousId` for alias; `properties`, `traits`, `context`
//! and `integrations` must be objects; numeric ids become strings).
//!
//! The stored payload is the final JSON of the event, `messageId`,
//! `timestamp` and `context.library` included, so a batch body is just the
//! stored payloads joined with commas, and a re-sent event is byte-identical
//! to its first send: the server can deduplicate by `messageId`. Numbers in
//! properties and traits keep the exact text they were written with
//! (serde_json's `arbitrary_precision`), so a 30-digit integer is not turned
//! into `1.2345678901234568e+29` on the way through.

mod encode;
#[cfg(test)]
mod encode_tests;
mod id;
mod merge;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use id::Id;
pub use merge::merge_missing;

/// The library name outbox puts in `context.library` of every event that
/// has none.
pub const LIBRARY_NAME: &str = "outbox";
/// The library version in `context.library`.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

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

impl EventType {
    /// Its name on the wire (`"track"`, ...), also the single-event route
    /// `/v1/<name>` of the Segment API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    /// Whether this call carries `properties` (track, page, screen).
    pub fn has_properties(self) -> bool {
        matches!(self, EventType::Track | EventType::Page | EventType::Screen)
    }
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
/// assert_eq!(v["context"]["library"]["name"], "outbox");
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
    #[serde(
        default,
        deserialize_with = "id::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_id: Option<String>,
    /// The anonymous visitor (one of `userId` and `anonymousId` is required).
    #[serde(
        default,
        deserialize_with = "id::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub anonymous_id: Option<String>,
    /// The group (required for `group`).
    #[serde(
        default,
        deserialize_with = "id::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_id: Option<String>,
    /// The identity being aliased (required for `alias`).
    #[serde(
        default,
        deserialize_with = "id::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_id: Option<String>,
    /// Event properties: a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// User or group traits (identify, group): a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Value>,
    /// Context (device, app, library...): a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Which destinations get the event: a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations: Option<Value>,
    /// When it happened, RFC 3339; set at track time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// A unique id for deduplication; a UUID is set at track time when absent.
    #[serde(
        default,
        deserialize_with = "id::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// Any other Segment field (`category`, `sentAt`...), passed through as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// outbox's own flag, never on the wire: a *critical* event (see
    /// [`Client::track_critical`](crate::Client::track_critical)). Read
    /// from a top-level `"critical": true` in an event's JSON (the C ABI,
    /// `outbox send`), never written into the payload.
    #[serde(default, skip_serializing)]
    pub critical: bool,
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
    /// `properties`, `traits`, `context` or `integrations` is not a JSON object.
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
    /// A `group` event without a `groupId`.
    #[error("a group event needs a groupId")]
    NoGroupId,
    /// An `alias` event without a `userId` or a `previousId`.
    #[error("an alias event needs a userId and a previousId")]
    IncompleteAlias,
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

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

impl Event {
    /// A `track` call: the user did `name`.
    pub fn track(name: impl Into<String>) -> Self {
        Event {
            kind: EventType::Track,
            event: Some(name.into()),
            ..Event::default()
        }
    }

    /// An `identify` call; set [`traits`](Self::traits) and an id.
    ///
    /// ```
    /// use outbox_std::Event;
    /// use serde_json::json;
    /// let e = Event::identify().user_id(97980).traits(json!({"plan": "pro"}));
    /// assert_eq!(e.user_id.as_deref(), Some("97980"));
    /// ```
    pub fn identify() -> Self {
        Event::of_type(EventType::Identify)
    }

    /// A `page` call for the page `name`.
    pub fn page(name: impl Into<String>) -> Self {
        Event {
            name: Some(name.into()),
            ..Event::of_type(EventType::Page)
        }
    }

    /// A `screen` call for the screen `name`.
    pub fn screen(name: impl Into<String>) -> Self {
        Event {
            name: Some(name.into()),
            ..Event::of_type(EventType::Screen)
        }
    }

    /// A `group` call: the user belongs to `group_id`; set
    /// [`traits`](Self::traits) for the group's traits.
    pub fn group(group_id: impl Into<Id>) -> Self {
        Event {
            group_id: Some(group_id.into().0),
            ..Event::of_type(EventType::Group)
        }
    }

    /// An `alias` call: `previous_id` and the [`user_id`](Self::user_id)
    /// set next are the same person.
    ///
    /// ```
    /// use outbox_std::{Event, EventError};
    /// assert_eq!(Event::alias("anon-1").into_payload(1000), Err(EventError::IncompleteAlias));
    /// assert!(Event::alias("anon-1").user_id("u-1").into_payload(1000).is_ok());
    /// ```
    pub fn alias(previous_id: impl Into<Id>) -> Self {
        Event {
            previous_id: Some(previous_id.into().0),
            ..Event::of_type(EventType::Alias)
        }
    }

    /// An empty event of the given type.
    pub fn of_type(kind: EventType) -> Self {
        Event {
            kind,
            ..Event::default()
        }
    }

    /// Set `userId` (a number becomes its decimal text).
    #[must_use]
    pub fn user_id(mut self, id: impl Into<Id>) -> Self {
        self.user_id = Some(id.into().0);
        self
    }

    /// Set `anonymousId` (a number becomes its decimal text).
    #[must_use]
    pub fn anonymous_id(mut self, id: impl Into<Id>) -> Self {
        self.anonymous_id = Some(id.into().0);
        self
    }

    /// Set `groupId`.
    #[must_use]
    pub fn group_id(mut self, id: impl Into<Id>) -> Self {
        self.group_id = Some(id.into().0);
        self
    }

    /// Set `previousId`.
    #[must_use]
    pub fn previous_id(mut self, id: impl Into<Id>) -> Self {
        self.previous_id = Some(id.into().0);
        self
    }

    /// Set the page or screen `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Set `properties` (must be a JSON object).
    #[must_use]
    pub fn properties(mut self, p: Value) -> Self {
        self.properties = Some(p);
        self
    }

    /// Set one property, keeping the others.
    ///
    /// ```
    /// use outbox_std::Event;
    /// let e = Event::track("Played").property("song", "Fix You").property("secs", 295);
    /// assert_eq!(e.properties.unwrap()["secs"], 295);
    /// ```
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        set_key(&mut self.properties, key.into(), value.into());
        self
    }

    /// Set `traits` (must be a JSON object).
    #[must_use]
    pub fn traits(mut self, t: Value) -> Self {
        self.traits = Some(t);
        self
    }

    /// Set one trait, keeping the others.
    #[must_use]
    pub fn trait_value(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        set_key(&mut self.traits, key.into(), value.into());
        self
    }

    /// Set `context` (must be a JSON object). `context.library` is added at
    /// track time when it has none.
    #[must_use]
    pub fn context(mut self, c: Value) -> Self {
        self.context = Some(c);
        self
    }

    /// Set `integrations` (must be a JSON object), e.g.
    /// `{"All": false, "Mixpanel": true}`.
    #[must_use]
    pub fn integrations(mut self, i: Value) -> Self {
        self.integrations = Some(i);
        self
    }

    /// Set `messageId` (otherwise a UUID v4 is set at track time).
    #[must_use]
    pub fn message_id(mut self, id: impl Into<Id>) -> Self {
        self.message_id = Some(id.into().0);
        self
    }

    /// Set `timestamp` (RFC 3339; otherwise the time of tracking).
    #[must_use]
    pub fn timestamp(mut self, t: impl Into<String>) -> Self {
        self.timestamp = Some(t.into());
        self
    }

    /// Mark the event *critical* (outbox's own flag, not a Segment field:
    /// it is never sent). [`Client::track`](crate::Client::track) and
    /// [`track_durable`](crate::Client::track_durable) then track it as
    /// [`track_critical`](crate::Client::track_critical) does: an upload of
    /// the queue up to it at once in any flush mode, and overflow drops a
    /// non-critical event before it.
    ///
    /// ```
    /// use outbox_std::Event;
    /// let e = Event::track("Alarm").user_id("u-1").critical(true);
    /// assert!(e.critical);
    /// let payload = e.into_payload(32 * 1024).unwrap();
    /// let v: serde_json::Value = serde_json::from_slice(&payload.bytes).unwrap();
    /// assert!(v.get("critical").is_none(), "never on the wire");
    /// ```
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Merge global `context` (and, for track, page and screen,
    /// `properties`) in; the event's own keys win, nested objects are
    /// merged key by key. The Client does this with its builder's
    /// `context`/`properties` on every event.
    ///
    /// ```
    /// use outbox_std::Event;
    /// use serde_json::json;
    /// let mut e = Event::track("x").property("a", 1);
    /// let ctx = json!({"app": {"name": "shop"}});
    /// let props = json!({"a": 0, "b": 2});
    /// e.apply_defaults(ctx.as_object().unwrap(), props.as_object().unwrap());
    /// assert_eq!(e.properties, Some(json!({"a": 1, "b": 2})));
    /// assert_eq!(e.context, Some(ctx));
    /// ```
    pub fn apply_defaults(&mut self, context: &Map<String, Value>, props: &Map<String, Value>) {
        merge::merge_into_field(&mut self.context, context);
        if self.kind.has_properties() {
            merge::merge_into_field(&mut self.properties, props);
        }
    }

    /// Check the event the way Segment does.
    pub fn validate(&self) -> Result<(), EventError> {
        for (field, value) in [
            ("properties", &self.properties),
            ("traits", &self.traits),
            ("context", &self.context),
            ("integrations", &self.integrations),
        ] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(EventError::NotAnObject { field });
            }
        }
        match self.kind {
            EventType::Alias if blank(&self.user_id) || blank(&self.previous_id) => {
                return Err(EventError::IncompleteAlias)
            }
            EventType::Alias => return Ok(()),
            _ if blank(&self.user_id) && blank(&self.anonymous_id) => {
                return Err(EventError::NoIdentity)
            }
            EventType::Track if blank(&self.event) => return Err(EventError::NoEventName),
            EventType::Group if blank(&self.group_id) => return Err(EventError::NoGroupId),
            _ => {}
        }
        Ok(())
    }

    /// Check the event, fill in `messageId`, `timestamp` and
    /// `context.library` when absent, and serialize it; refuses it when the
    /// result is over `max_bytes`.
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
        self.validate()?;
        let message_id = match self.message_id.take() {
            Some(id) if !id.is_empty() => id,
            // uuid's `fast-rng`: a thread-local generator seeded from the
            // OS, not a getrandom system call per event.
            _ => {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let id = uuid::Uuid::new_v4().hyphenated();
                id.encode_lower(&mut text).to_owned()
            }
        };
        // Like every Segment SDK, say who sent it (analytics-go fills
        // context.library only when the caller gave no context; outbox
        // keeps the caller's context and adds the key when it is missing):
        // the encoder writes it, and the timestamp when there is none.
        buf.clear();
        encode::write_event(&self, &message_id, buf)
            .map_err(|e| EventError::Serialize(e.to_string()))?;
        if buf.len() > max_bytes {
            return Err(EventError::TooLarge {
                size: buf.len(),
                max: max_bytes,
            });
        }
        Ok(message_id)
    }
}

/// Set `key` in an optional object field (making it an object when absent
/// or not one).
fn set_key(field: &mut Option<Value>, key: String, value: Value) {
    if !matches!(field, Some(Value::Object(_))) {
        *field = Some(Value::Object(Map::new()));
    }
    if let Some(Value::Object(map)) = field {
        map.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent(e: Event) -> Value {
        serde_json::from_slice(&e.into_payload(32 * 1024).unwrap().bytes).unwrap()
    }

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
                   "timestamp":"2026-01-01T00:00:00Z",
                   "context":{"library":{"name":"outbox","version":LIBRARY_VERSION}}})
        );
    }

    #[test]
    fn library_is_added_to_the_events_own_context_never_replacing_it() {
        let v = sent(
            Event::track("x")
                .user_id("u")
                .context(json!({"ip": "1.2.3.4", "app": {"name": "shop"}})),
        );
        assert_eq!(v["context"]["ip"], "1.2.3.4");
        assert_eq!(v["context"]["app"]["name"], "shop");
        assert_eq!(v["context"]["library"]["name"], "outbox");
        let own = json!({"name": "analytics-python", "version": "2.4.0"});
        let v = sent(
            Event::track("x")
                .user_id("u")
                .context(json!({ "library": own.clone() })),
        );
        assert_eq!(v["context"]["library"], own, "an event's own library wins");
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
            e.clone().integrations(json!("all")).into_payload(1000),
            Err(EventError::NotAnObject {
                field: "integrations"
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
        assert_eq!(
            Event::of_type(EventType::Group)
                .user_id("u")
                .into_payload(1000),
            Err(EventError::NoGroupId)
        );
        assert_eq!(
            Event::alias("old").anonymous_id("a").into_payload(1000),
            Err(EventError::IncompleteAlias)
        );
        assert!(matches!(
            e.properties(json!({"s": "y".repeat(200)}))
                .into_payload(100),
            Err(EventError::TooLarge { max: 100, .. })
        ));
    }

    #[test]
    fn every_segment_call_has_a_constructor() {
        let v = sent(Event::identify().user_id(7).trait_value("plan", "pro"));
        assert_eq!(
            (v["type"].clone(), v["userId"].clone()),
            (json!("identify"), json!("7"))
        );
        assert_eq!(v["traits"]["plan"], "pro");
        let v = sent(Event::page("Home").anonymous_id("a").property("path", "/"));
        assert_eq!(
            (v["type"].clone(), v["name"].clone()),
            (json!("page"), json!("Home"))
        );
        assert_eq!(v["properties"]["path"], "/");
        let v = sent(Event::screen("Cart").user_id("u"));
        assert_eq!(
            (v["type"].clone(), v["name"].clone()),
            (json!("screen"), json!("Cart"))
        );
        let v = sent(Event::group(1234u32).user_id("u").traits(json!({"n": 1})));
        assert_eq!(
            (v["type"].clone(), v["groupId"].clone()),
            (json!("group"), json!("1234"))
        );
        let v = sent(Event::alias("anon-9").user_id("u-9"));
        assert_eq!(v["previousId"], "anon-9");
        assert_eq!(v["type"], "alias");
    }

    #[test]
    fn unknown_fields_pass_through_and_numeric_ids_become_strings() {
        let e: Event = serde_json::from_str(
            r#"{"type":"group","groupId":77,"userId":12345678901234567890123,"traits":{"n":1},"category":"c"}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventType::Group);
        let v = sent(e);
        assert_eq!(v["groupId"], "77");
        assert_eq!(v["userId"], "12345678901234567890123");
        assert_eq!(v["traits"]["n"], 1);
        assert_eq!(v["category"], "c");
    }

    #[test]
    fn the_critical_flag_is_read_from_json_and_never_written() {
        let e: Event =
            serde_json::from_str(r#"{"event":"x","userId":"u","critical":true}"#).unwrap();
        assert!(e.critical);
        assert!(!e.extra.contains_key("critical"), "{:?}", e.extra);
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("critical"), "derived Serialize: {text}");
        let v = sent(e);
        assert!(v.get("critical").is_none(), "payload: {v}");
        let v = sent(Event::track("x").user_id("u").critical(true));
        assert!(v.get("critical").is_none(), "payload: {v}");
        let plain: Event = serde_json::from_str(r#"{"event":"x","userId":"u"}"#).unwrap();
        assert!(!plain.critical);
        assert!(serde_json::from_str::<Event>(r#"{"event":"x","critical":"yes"}"#).is_err());
    }

    #[test]
    fn numbers_keep_the_text_they_were_written_with() {
        let e: Event = serde_json::from_str(
            r#"{"event":"x","userId":"u","properties":{"big":123456789012345678901234567890,"f":1.10,"e":1e400}}"#,
        )
        .unwrap();
        let p = e.into_payload(1000).unwrap();
        let text = String::from_utf8(p.bytes).unwrap();
        assert!(
            text.contains(r#""big":123456789012345678901234567890"#),
            "{text}"
        );
        assert!(text.contains(r#""f":1.10"#), "{text}");
        // Only an exponent gets its sign spelled out; no digit changes.
        assert!(text.contains(r#""e":1e+400"#), "{text}");
    }

    #[test]
    fn defaults_merge_under_the_events_own_keys() {
        let ctx = json!({"app": {"name": "shop", "version": "1.0"}, "locale": "de-DE"});
        let props = json!({"plan": "free", "region": "eu"});
        let mut e = Event::track("x")
            .user_id("u")
            .context(json!({"app": {"build": "7"}}))
            .property("plan", "pro");
        e.apply_defaults(ctx.as_object().unwrap(), props.as_object().unwrap());
        let v = sent(e);
        assert_eq!(
            v["context"]["app"],
            json!({"build": "7", "name": "shop", "version": "1.0"})
        );
        assert_eq!(v["context"]["locale"], "de-DE");
        assert_eq!(v["properties"], json!({"plan": "pro", "region": "eu"}));
        let mut i = Event::identify().user_id("u");
        i.apply_defaults(ctx.as_object().unwrap(), props.as_object().unwrap());
        assert_eq!(i.properties, None, "identify carries no properties");
    }
}
