//! The direct encoder against the derived `Serialize` it replaced: the same
//! bytes on varied events (every call type, escapes and unicode in names,
//! ids, keys and values, contexts with and without `library` and with keys
//! either side of it, extra fields, exact number text).

use serde_json::{json, Map, Value};

use super::{Event, EventType, LIBRARY_NAME, LIBRARY_VERSION};

/// What `write_payload` wrote before the direct encoder: the envelope
/// filled in on the event, then `serde_json::to_writer(&event)`.
fn by_serde(mut e: Event, message_id: &str, timestamp: &str) -> Vec<u8> {
    e.message_id = Some(message_id.to_string());
    e.timestamp = Some(timestamp.to_string());
    let context = e.context.get_or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(c) = context {
        c.entry("library")
            .or_insert_with(|| json!({"name": LIBRARY_NAME, "version": LIBRARY_VERSION}));
    }
    serde_json::to_vec(&e).unwrap()
}

/// The direct encoder's bytes and the derived serializer's for the same
/// event (with the `messageId` and `timestamp` the encoder chose).
fn both(e: Event) -> (String, String) {
    let ours = e.clone().into_payload(1 << 20).unwrap();
    let v: Value = serde_json::from_slice(&ours.bytes).unwrap();
    let ts = v["timestamp"].as_str().unwrap().to_string();
    assert_eq!(v["messageId"], ours.message_id.as_str());
    let theirs = by_serde(e, &ours.message_id, &ts);
    (
        String::from_utf8(ours.bytes).unwrap(),
        String::from_utf8(theirs).unwrap(),
    )
}

fn varied() -> Vec<Event> {
    let weird = "quote \" back \\ slash / nl \n tab \t nul \u{0} bell \u{7} del \u{7f} é ü 日本 🎉 \u{2028}";
    let mut extra_event = Event::track("with extra").user_id("u");
    extra_event.extra.insert("category".into(), json!("c"));
    extra_event
        .extra
        .insert("sentAt".into(), json!("2026-01-01T00:00:00Z"));
    extra_event
        .extra
        .insert("a weird \"key\"".into(), json!([1, "x", null]));
    let from_json: Event = serde_json::from_str(
        r#"{"type":"group","groupId":77,"userId":12345678901234567890123,
            "traits":{"n":1,"big":123456789012345678901234567890,"f":1.10,"e":1e400},
            "context":{"zz":1,"app":{"name":"shop"}},"integrations":{"All":false},
            "category":"c","messageId":"given-id","timestamp":"2026-02-03T04:05:06.789Z"}"#,
    )
    .unwrap();
    vec![
        Event::track("Order Completed").user_id("u-1"),
        Event::track(weird).user_id(weird).property(weird, weird),
        Event::track("x")
            .anonymous_id("a")
            .properties(json!({"nested": {"deep": [1, 2.5, -3, true, null, {"k": "v"}]}, "": ""})),
        Event::identify()
            .user_id(42u64)
            .traits(json!({"plan": "pro", "名前": "花子"})),
        Event::page("Home")
            .anonymous_id("a")
            .property("path", "/a?b=c&d"),
        Event::screen("Cart").user_id("u").name(weird),
        Event::group("g-1").user_id("u").traits(json!({"n": 1})),
        Event::alias("anon-9").user_id("u-9"),
        // Contexts: keys before and after "library", an own library, empty.
        Event::track("c")
            .user_id("u")
            .context(json!({"app": {"v": 1}, "locale": "de", "zz": 0})),
        Event::track("c")
            .user_id("u")
            .context(json!({"libraryX": 1, "lib": 2, "Library": 3})),
        Event::track("c").user_id("u").context(json!({"aaa": 1})),
        Event::track("c").user_id("u").context(json!({"zzz": 1})),
        Event::track("c").user_id("u").context(json!({})),
        Event::track("c")
            .user_id("u")
            .context(json!({"library": {"name": "analytics-python", "version": "2.4.0"}})),
        Event::track("c")
            .user_id("u")
            .context(json!({weird: weird})),
        // Given ids and timestamps; empty strings where allowed.
        Event::track("t")
            .user_id("u")
            .message_id(weird)
            .timestamp("2020-01-01T00:00:00Z"),
        Event::track("t")
            .user_id("u")
            .anonymous_id("")
            .message_id("")
            .timestamp(""),
        Event::track("t")
            .user_id("u")
            .integrations(json!({"All": false, "Mixpanel": true})),
        extra_event,
        from_json,
    ]
}

#[test]
fn the_direct_encoder_writes_the_bytes_serde_json_wrote() {
    for (i, e) in varied().into_iter().enumerate() {
        let (ours, theirs) = both(e);
        assert_eq!(ours, theirs, "event {i}");
    }
}

#[test]
fn every_call_type_is_covered() {
    let kinds: Vec<EventType> = varied().iter().map(|e| e.kind).collect();
    for k in [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ] {
        assert!(kinds.contains(&k), "{k:?}");
    }
}
