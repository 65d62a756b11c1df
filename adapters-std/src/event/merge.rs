//! Merging JSON objects without losing what the event said itself.
//!
//! Used for the Client's global context and properties, for
//! `context.library`, and by the CLI and the collector for a batch
//! envelope's `context` and `integrations`: the event's own keys always win,
//! and nested objects are merged key by key (so a global `app.name` and an
//! event's `app.build` both survive).

use serde_json::{Map, Value};

/// Add every key of `defaults` that `target` lacks; where both hold an
/// object, merge those the same way. `target`'s values win.
///
/// ```
/// use outbox_std::merge_missing;
/// use serde_json::json;
/// let mut event = json!({"app": {"build": "3"}, "ip": "0.0.0.0"});
/// let global = json!({"app": {"name": "shop", "build": "1"}, "locale": "de-DE"});
/// merge_missing(event.as_object_mut().unwrap(), global.as_object().unwrap());
/// assert_eq!(event, json!({"app": {"build": "3", "name": "shop"}, "ip": "0.0.0.0", "locale": "de-DE"}));
/// ```
pub fn merge_missing(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, default) in defaults {
        match target.get_mut(key) {
            None => {
                target.insert(key.clone(), default.clone());
            }
            Some(Value::Object(mine)) => {
                if let Value::Object(theirs) = default {
                    merge_missing(mine, theirs);
                }
            }
            Some(_) => {}
        }
    }
}

/// `merge_missing` into an optional field that should hold an object: an
/// absent field gets a copy of `defaults`; a field that is not an object is
/// left alone (validation refuses it later).
pub(crate) fn merge_into_field(field: &mut Option<Value>, defaults: &Map<String, Value>) {
    if defaults.is_empty() {
        return;
    }
    match field {
        None | Some(Value::Null) => *field = Some(Value::Object(defaults.clone())),
        Some(Value::Object(mine)) => merge_missing(mine, defaults),
        Some(_) => {}
    }
}
