//! The stored JSON of an event, written field by field into the caller's
//! buffer.
//!
//! Why not `serde_json::to_writer(&event)`: the derived `Serialize` of
//! [`Event`] goes through serde's flatten machinery (a map serializer for
//! `extra`), and filling the envelope first meant building a `context.library`
//! object, a `String` for the timestamp and one for the `messageId`, all
//! freed again right after. On the bench's events that was most of
//! `track`. Here the envelope (type, ids, name, timestamp, `messageId`,
//! `context.library`) is written directly and serde_json is kept for what
//! the application gave: strings are escaped by serde_json's own string
//! serializer and the `properties`/`traits`/`context`/`integrations`
//! values are written by serde_json, so the bytes are exactly those the
//! derived `Serialize` produces (field order, escapes, number text); a test
//! compares both on varied events.

use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{Event, LIBRARY_NAME, LIBRARY_VERSION};

/// `"library":{...}` as serde_json writes the default library object.
fn library_entry() -> &'static [u8] {
    static ENTRY: OnceLock<Vec<u8>> = OnceLock::new();
    ENTRY.get_or_init(|| {
        let mut out = b"\"library\":".to_vec();
        let lib = serde_json::json!({"name": LIBRARY_NAME, "version": LIBRARY_VERSION});
        // Writing a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, &lib);
        out
    })
}

/// Whether serde_json's `Map` iterates its keys sorted (a `BTreeMap`, the
/// default) rather than in insertion order (its `preserve_order` feature,
/// which any crate in a build can turn on): it decides where an inserted
/// `library` key would have gone.
fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

/// Write `"key":` after a comma unless it is the first field.
fn key(buf: &mut Vec<u8>, first: &mut bool, name: &str) -> serde_json::Result<()> {
    if !*first {
        buf.push(b',');
    }
    *first = false;
    serde_json::to_writer(&mut *buf, name)?;
    buf.push(b':');
    Ok(())
}

fn string_field(
    buf: &mut Vec<u8>,
    first: &mut bool,
    name: &str,
    value: &Option<String>,
) -> serde_json::Result<()> {
    if let Some(v) = value {
        key(buf, first, name)?;
        serde_json::to_writer(&mut *buf, v.as_str())?;
    }
    Ok(())
}

fn value_field(
    buf: &mut Vec<u8>,
    first: &mut bool,
    name: &str,
    value: &Option<Value>,
) -> serde_json::Result<()> {
    if let Some(v) = value {
        key(buf, first, name)?;
        serde_json::to_writer(&mut *buf, v)?;
    }
    Ok(())
}

/// The context with `library` added when it has none (as inserting it into
/// the map and serialising the map would write it).
fn context(buf: &mut Vec<u8>, context: Option<&Value>) -> serde_json::Result<()> {
    let map = match context {
        Some(Value::Object(m)) => m,
        // Absent: a context of just the library.
        None => {
            buf.push(b'{');
            buf.extend_from_slice(library_entry());
            buf.push(b'}');
            return Ok(());
        }
        // Validation refuses a context that is not an object; written as is.
        Some(other) => return serde_json::to_writer(&mut *buf, other),
    };
    if map.contains_key("library") {
        return serde_json::to_writer(&mut *buf, map);
    }
    let sorted = maps_are_sorted();
    let mut pending = true;
    let mut first = true;
    buf.push(b'{');
    for (k, v) in map {
        if pending && sorted && k.as_str() > "library" {
            if !first {
                buf.push(b',');
            }
            buf.extend_from_slice(library_entry());
            pending = false;
            first = false;
        }
        key(buf, &mut first, k)?;
        serde_json::to_writer(&mut *buf, v)?;
    }
    if pending {
        if !first {
            buf.push(b',');
        }
        buf.extend_from_slice(library_entry());
    }
    buf.push(b'}');
    Ok(())
}

/// Append `event`'s stored JSON to `buf`, with `message_id`, the event's
/// own timestamp or now, and `context.library` when the context has none.
/// The event must be valid (validation refuses non-object fields).
pub(super) fn write_event(
    event: &Event,
    message_id: &str,
    buf: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let mut first = true;
    buf.push(b'{');
    key(buf, &mut first, "type")?;
    buf.push(b'"');
    buf.extend_from_slice(event.kind.as_str().as_bytes());
    buf.push(b'"');
    string_field(buf, &mut first, "event", &event.event)?;
    string_field(buf, &mut first, "name", &event.name)?;
    string_field(buf, &mut first, "userId", &event.user_id)?;
    string_field(buf, &mut first, "anonymousId", &event.anonymous_id)?;
    string_field(buf, &mut first, "groupId", &event.group_id)?;
    string_field(buf, &mut first, "previousId", &event.previous_id)?;
    value_field(buf, &mut first, "properties", &event.properties)?;
    value_field(buf, &mut first, "traits", &event.traits)?;
    key(buf, &mut first, "context")?;
    context(buf, event.context.as_ref())?;
    value_field(buf, &mut first, "integrations", &event.integrations)?;
    key(buf, &mut first, "timestamp")?;
    match event.timestamp.as_deref() {
        Some(t) if !t.is_empty() => serde_json::to_writer(&mut *buf, t)?,
        _ => {
            // RFC 3339 text has nothing to escape.
            let now = humantime::format_rfc3339_millis(SystemTime::now());
            write!(buf, "\"{now}\"").map_err(serde_json::Error::io)?;
        }
    }
    key(buf, &mut first, "messageId")?;
    serde_json::to_writer(&mut *buf, message_id)?;
    for (k, v) in &event.extra {
        key(buf, &mut first, k)?;
        serde_json::to_writer(&mut *buf, v)?;
    }
    buf.push(b'}');
    Ok(())
}
