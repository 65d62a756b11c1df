//! The events every contender takes: about 300 bytes of Segment-style JSON
//! each, the same set for everyone.
//!
//! Contenders that take bytes (the raw SQLite ones) get each event's final
//! payload, `messageId` and `timestamp` included; outbox gets the
//! [`Event`] and does its own serialising, as an application would see it.

use outbox_std::Event;
use serde_json::json;

/// `count` events, deterministic: their JSON differs by user, order and
/// amounts only.
pub fn events(count: usize) -> Vec<Event> {
    (0..count).map(event).collect()
}

/// Event number `i`.
pub fn event(i: usize) -> Event {
    Event::track("Order Completed")
        .user_id(format!("user-{:07}", i % 1_000_003))
        .properties(json!({
            "orderId": format!("ord-{i:09}"),
            "total": (i % 10_000) as f64 / 100.0,
            "currency": "EUR",
            "sku": format!("sku-{:05}", i % 50_000),
        }))
        .context(json!({
            "library": {"name": "outbox-bench", "version": "0.1.0"},
            "locale": "en-GB",
        }))
}

/// The stored payloads of `events` (with a `messageId` and `timestamp`
/// each), as outbox would store them.
pub fn payloads(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            e.clone()
                .into_payload(32 * 1024)
                .expect("bench events are valid")
                .bytes
        })
        .collect()
}

/// The mean payload size of `payloads`.
pub fn mean_size(payloads: &[Vec<u8>]) -> usize {
    payloads.iter().map(Vec::len).sum::<usize>() / payloads.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_about_300_bytes() {
        let p = payloads(&events(100));
        let mean = mean_size(&p);
        assert!((270..=330).contains(&mean), "{mean}");
    }
}
