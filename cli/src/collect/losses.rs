//! Loss reports: the `outbox dropped events` track event a Client adds to
//! the batch after it dropped events (see outbox-std's `LOSS_EVENT`).
//!
//! The collector stores them like any event (deduplicated by `messageId`,
//! so a re-sent report counts once) but prints them apart: each on its own
//! line, and in the summary as "losses reported by clients", never among
//! the ordinary events accepted.

use serde_json::Value;

/// Whether `event` is a loss report.
pub fn is_loss_report(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("track")
        && event.get("event").and_then(Value::as_str) == Some(outbox_std::LOSS_EVENT)
}

/// Events a report says were dropped (its `properties.total`, else the sum
/// of its counts).
pub fn dropped(event: &Value) -> u64 {
    let props = &event["properties"];
    props["total"].as_u64().unwrap_or_else(|| {
        props["counts"]
            .as_object()
            .map_or(0, |c| c.values().filter_map(Value::as_u64).sum())
    })
}

/// One line for people: how many, by reason, which numbers, since when.
/// The text comes from a client: the caller escapes it before printing.
pub fn describe(event: &Value) -> String {
    let props = &event["properties"];
    let counts = props["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut line = format!(
        "losses reported by a client: {} events dropped ({counts})",
        dropped(event)
    );
    if let (Some(first), Some(last)) = (props["first_seq"].as_u64(), props["last_seq"].as_u64()) {
        line.push_str(&format!(", seq {first}..={last}"));
    }
    if let Some(since) = props["since"].as_str() {
        line.push_str(&format!(", since {since}"));
    } else if let Some(ms) = props["since_boot_ms"].as_u64() {
        // A device that knows only its board clock (outbox-embedded's
        // `LossCounter::set_now`): the time since its boot.
        line.push_str(&format!(", since {ms} ms after the device's boot"));
    }
    if let Some(id) = event["messageId"].as_str() {
        line.push_str(&format!(" [{id}]"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_report_is_told_apart_and_described() {
        let r = json!({"type": "track", "event": "outbox dropped events", "messageId": "m",
            "properties": {"counts": {"overflow": 2, "damaged": 1}, "total": 3,
                           "first_seq": 0, "last_seq": 9, "since": "2026-01-01T00:00:00.000Z"}});
        assert!(is_loss_report(&r));
        assert!(!is_loss_report(&json!({"type": "track", "event": "Order"})));
        assert_eq!(dropped(&r), 3);
        assert_eq!(
            describe(&r),
            "losses reported by a client: 3 events dropped (damaged 1, overflow 2), seq 0..=9, \
             since 2026-01-01T00:00:00.000Z [m]"
        );
    }

    #[test]
    fn a_device_report_with_only_its_boot_clock_says_since_when() {
        let r = json!({"type": "track", "event": "outbox dropped events", "messageId": "d",
            "properties": {"counts": {"damaged": 1}, "total": 1,
                           "first_seq": 4, "last_seq": 4, "since_boot_ms": 1500}});
        assert_eq!(
            describe(&r),
            "losses reported by a client: 1 events dropped (damaged 1), seq 4..=4, \
             since 1500 ms after the device's boot [d]"
        );
    }
}
