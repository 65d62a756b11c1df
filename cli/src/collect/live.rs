//! What the live events page shows, kept in memory and bounded: the last
//! [`LIVE_EVENTS`] accepted events, the counters, events per second over the
//! last [`CHART_SECONDS`] seconds, and the viewers to tell about changes.
//!
//! The collector calls in from its ingest path ([`Live::accepted`],
//! [`Live::rejected`], ...). None of those calls waits for a viewer: each
//! change is encoded once and pushed into every viewer's bounded
//! [`Mailbox`], which drops its oldest update when full. A viewer that fell
//! behind gets a fresh snapshot instead ([`Subscription::resync`]).
//!
//! Nothing here shows the write key: rows carry a few chosen fields of an
//! event (never a request header), and any occurrence of the configured key
//! in them is blanked out. Time comes in as an argument, so the ring, the
//! counters and the chart are tested without a clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::viewer::{Mailbox, Next, VIEWER_QUEUE, VIEWER_QUEUE_BYTES};

/// Accepted events kept for the page by default.
pub const LIVE_EVENTS: usize = 1000;
/// The most events `collect --ui-events` may keep.
pub const MAX_LIVE_EVENTS: usize = 10_000;
/// The chart's span: one bar per second over this many seconds.
pub const CHART_SECONDS: usize = 120;
/// The chart's span as a duration.
pub const CHART_DURATION: Duration = Duration::from_secs(CHART_SECONDS as u64);
/// Longest field shown (in characters); longer ones are cut with `…`.
const FIELD_CHARS: usize = 200;
/// Longest properties preview shown (in characters).
const PROPERTIES_CHARS: usize = 300;
/// Distinct (status, reason) pairs counted apart; more go under one line.
const MAX_REASONS: usize = 32;
/// What a write key found in an event is shown as.
const KEY_BLANKED: &str = "[key hidden]";

/// One accepted event as the page shows it (every field is the client's text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `track`, `identify`, ...
    pub kind: String,
    /// The event's name (`event`, or `name` for page and screen calls).
    pub event: String,
    /// `userId`, or the `anonymousId` when there is none.
    pub user: String,
    /// Its `messageId`.
    pub message_id: String,
    /// When the collector accepted it (RFC 3339, UTC).
    pub received: String,
    /// `properties` (or `traits`) as compact JSON, cut short.
    pub properties: String,
}

impl Row {
    /// The row for an accepted event, received at `at`. `key`: the write key,
    /// blanked out wherever it appears.
    pub fn new(event: &Value, at: SystemTime, key: Option<&str>) -> Row {
        let field = |names: &[&str], max: usize| {
            let text = names
                .iter()
                .find_map(|n| event.get(*n).filter(|v| !v.is_null()))
                .map(shown)
                .unwrap_or_default();
            blank_key(cut(text, max), key)
        };
        Row {
            kind: field(&["type"], FIELD_CHARS),
            event: field(&["event", "name"], FIELD_CHARS),
            user: field(&["userId", "anonymousId"], FIELD_CHARS),
            message_id: field(&["messageId"], FIELD_CHARS),
            received: humantime::format_rfc3339_millis(at).to_string(),
            properties: field(&["properties", "traits"], PROPERTIES_CHARS),
        }
    }

    /// The shown fields, in the page's column order.
    pub fn fields(&self) -> [&str; 6] {
        [
            &self.received,
            &self.kind,
            &self.event,
            &self.user,
            &self.message_id,
            &self.properties,
        ]
    }

    /// Whether any field contains `filter` (ignoring case); an empty filter matches all.
    pub fn matches(&self, filter: &str) -> bool {
        let filter = filter.trim().to_lowercase();
        filter.is_empty()
            || self
                .fields()
                .iter()
                .any(|f| f.to_lowercase().contains(&filter))
    }

    fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "event": self.event,
            "userId": self.user,
            "messageId": self.message_id,
            "received": self.received,
            "properties": self.properties,
        })
    }
}

/// A string as itself, anything else as compact JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cut(mut s: String, max: usize) -> String {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
        s.push('…');
    }
    s
}

fn blank_key(s: String, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() && s.contains(k) => s.replace(k, KEY_BLANKED),
        _ => s,
    }
}

/// Requests refused with one status and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status answered.
    pub status: u16,
    /// Why (the text of the answer; may quote the client).
    pub reason: String,
    /// How many requests.
    pub count: u64,
}

/// The page's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Distinct events accepted.
    pub accepted: u64,
    /// Events received again and absorbed by deduplication.
    pub duplicates: u64,
    /// Refused requests by status and reason, in order of first sight.
    pub rejected: Vec<Rejection>,
    /// Injected failures by status.
    pub failures: Vec<(u16, u64)>,
    /// Batches committed whose answer was dropped on purpose.
    pub dropped_responses: u64,
    /// Connections closed unanswered on purpose (the network made to look down).
    pub refused: u64,
}

impl Counters {
    /// Refused requests, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|r| r.count).sum()
    }

    /// Faults injected, all kinds.
    pub fn faults_total(&self) -> u64 {
        self.failures.iter().map(|(_, n)| n).sum::<u64>() + self.dropped_responses + self.refused
    }

    fn reject(&mut self, status: u16, reason: &str) {
        if let Some(r) = self
            .rejected
            .iter_mut()
            .find(|r| r.status == status && r.reason == reason)
        {
            r.count += 1;
            return;
        }
        // Reasons may quote a messageId: past a few, lump them together.
        let reason = if self.rejected.len() < MAX_REASONS {
            reason.to_string()
        } else {
            "(other reasons)".to_string()
        };
        match self
            .rejected
            .iter_mut()
            .find(|r| r.status == status && r.reason == reason)
        {
            Some(r) => r.count += 1,
            None => self.rejected.push(Rejection {
                status,
                reason,
                count: 1,
            }),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejectedTotal": self.rejected_total(),
            "rejected": self.rejected.iter().map(|r| json!({
                "status": r.status, "reason": r.reason, "count": r.count,
            })).collect::<Vec<_>>(),
            "faultsTotal": self.faults_total(),
            "faults": {
                "failures": self.failures.iter().map(|(status, count)| json!({
                    "status": status, "count": count,
                })).collect::<Vec<_>>(),
                "droppedResponses": self.dropped_responses,
                "refused": self.refused,
            },
        })
    }
}

/// Events per second over the last [`CHART_SECONDS`], one bucket a second.
#[derive(Debug)]
struct Rate {
    /// (unix second, events), indexed by second modulo the span.
    buckets: Vec<(u64, u64)>,
}

impl Rate {
    fn new() -> Rate {
        Rate {
            buckets: vec![(0, 0); CHART_SECONDS],
        }
    }

    fn add(&mut self, second: u64, n: u64) {
        let slot = &mut self.buckets[(second % CHART_SECONDS as u64) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += n;
    }

    /// The counts of the seconds ending with `now` (oldest first).
    fn series(&self, now: u64) -> Vec<u64> {
        let first = now.saturating_sub(CHART_SECONDS as u64 - 1);
        (first..=now)
            .map(|s| {
                let (second, n) = self.buckets[(s % CHART_SECONDS as u64) as usize];
                if second == s {
                    n
                } else {
                    0
                }
            })
            .collect()
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Everything the page shows at one moment.
#[derive(Clone, Debug)]
pub struct View {
    /// The events kept, newest first.
    pub rows: Vec<Arc<Row>>,
    /// How many events are kept at most.
    pub capacity: usize,
    /// The counters.
    pub counters: Counters,
    /// Events per second, oldest first, ending at `chart_end`.
    pub chart: Vec<u64>,
    /// The unix second of the chart's last bar.
    pub chart_end: u64,
}

impl View {
    /// The `hello` event a viewer starts from (and resyncs with).
    pub fn to_json(&self) -> Value {
        json!({
            "capacity": self.capacity,
            "events": self.rows.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "counters": self.counters.to_json(),
            "chart": { "end": self.chart_end, "counts": self.chart },
        })
    }
}

/// Encodes one Server-Sent Event. The JSON is on one line (serde never
/// writes a raw newline) and `<`, `>`, `&` and the JavaScript line
/// separators are escaped as `\uXXXX`, so client text stays data wherever
/// the stream ends up.
pub fn sse_message(event: &str, data: &Value) -> String {
    let mut out = format!("event: {event}\ndata: ");
    for c in data.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push_str("\n\n");
    out
}

struct Inner {
    ring: VecDeque<Arc<Row>>,
    counters: Counters,
    rate: Rate,
    viewers: Vec<(u64, Arc<Mailbox>)>,
    next_viewer: u64,
}

/// The live view of a collector, shared by its ingest path and its viewers.
pub struct Live {
    inner: Mutex<Inner>,
    capacity: usize,
    key: Option<String>,
}

impl Live {
    /// Keeps the last `capacity` events (at least one); `key` is never shown.
    pub fn new(capacity: usize, key: Option<String>) -> Live {
        let capacity = capacity.max(1);
        Live {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(LIVE_EVENTS)),
                counters: Counters::default(),
                rate: Rate::new(),
                viewers: Vec::new(),
                next_viewer: 0,
            }),
            capacity,
            key,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; keep serving regardless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many events are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Newly accepted events (oldest first) and the duplicates absorbed with them.
    pub fn accepted<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Value>,
        duplicates: u64,
        at: SystemTime,
    ) {
        let events: Vec<&Value> = events.into_iter().collect();
        // Only the newest `capacity` can be kept or shown.
        let skip = events.len().saturating_sub(self.capacity);
        let rows: Vec<Arc<Row>> = events[skip..]
            .iter()
            .map(|e| Arc::new(Row::new(e, at, self.key.as_deref())))
            .collect();
        let mut inner = self.inner();
        inner.counters.accepted += events.len() as u64;
        inner.counters.duplicates += duplicates;
        inner.rate.add(unix_seconds(at), events.len() as u64);
        for row in &rows {
            if inner.ring.len() >= self.capacity {
                inner.ring.pop_front();
            }
            inner.ring.push_back(Arc::clone(row));
        }
        if inner.viewers.is_empty() {
            return;
        }
        let update = json!({
            "events": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "counters": inner.counters.to_json(),
        });
        broadcast(&inner, sse_message("batch", &update));
    }

    /// A request refused with `status` for `reason`.
    pub fn rejected(&self, status: u16, reason: &str) {
        let reason = blank_key(cut(reason.to_string(), FIELD_CHARS), self.key.as_deref());
        self.counters_changed(|c| c.reject(status, &reason));
    }

    /// A batch answered with an injected failure.
    pub fn injected_failure(&self, status: u16) {
        self.counters_changed(
            |c| match c.failures.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => c.failures.push((status, 1)),
            },
        );
    }

    /// A committed batch whose answer was dropped on purpose.
    pub fn dropped_response(&self) {
        self.counters_changed(|c| c.dropped_responses += 1);
    }

    /// A connection closed unanswered on purpose.
    pub fn refused(&self) {
        self.counters_changed(|c| c.refused += 1);
    }

    fn counters_changed(&self, change: impl FnOnce(&mut Counters)) {
        let mut inner = self.inner();
        change(&mut inner.counters);
        if !inner.viewers.is_empty() {
            let update = json!({ "counters": inner.counters.to_json() });
            broadcast(&inner, sse_message("stats", &update));
        }
    }

    /// Everything shown, as of `now`.
    pub fn view(&self, now: SystemTime) -> View {
        let inner = self.inner();
        self.view_of(&inner, now)
    }

    fn view_of(&self, inner: &Inner, now: SystemTime) -> View {
        let end = unix_seconds(now);
        View {
            rows: inner.ring.iter().rev().cloned().collect(),
            capacity: self.capacity,
            counters: inner.counters.clone(),
            chart: inner.rate.series(end),
            chart_end: end,
        }
    }

    /// The counters and the chart as of `now` (a viewer's once-a-second tick).
    pub fn tick(&self, now: SystemTime) -> Value {
        let inner = self.inner();
        let end = unix_seconds(now);
        json!({
            "counters": inner.counters.to_json(),
            "chart": { "end": end, "counts": inner.rate.series(end) },
        })
    }

    /// A new viewer: the view to start from, and its subscription to every
    /// change after it (none is missed or shown twice).
    pub fn subscribe(self: &Arc<Self>, now: SystemTime) -> (Subscription, View) {
        let mut inner = self.inner();
        let id = inner.next_viewer;
        inner.next_viewer += 1;
        let mailbox = Arc::new(Mailbox::new(VIEWER_QUEUE, VIEWER_QUEUE_BYTES));
        inner.viewers.push((id, Arc::clone(&mailbox)));
        let view = self.view_of(&inner, now);
        drop(inner);
        (
            Subscription {
                live: Arc::clone(self),
                id,
                mailbox,
            },
            view,
        )
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.inner().viewers.len()
    }
}

/// Pushes one encoded update to every viewer; never waits for any.
fn broadcast(inner: &Inner, message: String) {
    let message: Arc<str> = Arc::from(message);
    for (_, mailbox) in &inner.viewers {
        mailbox.push(Arc::clone(&message));
    }
}

/// One viewer's subscription; dropping it unsubscribes.
pub struct Subscription {
    live: Arc<Live>,
    id: u64,
    mailbox: Arc<Mailbox>,
}

impl Subscription {
    /// The next update (waiting at most `wait`).
    pub fn next(&self, wait: Duration) -> Next {
        self.mailbox.next(wait)
    }

    /// A fresh view for a viewer that fell behind; whatever was queued is
    /// dropped, and the updates after this view follow it.
    pub fn resync(&self, now: SystemTime) -> View {
        let inner = self.live.inner();
        self.mailbox.clear();
        self.live.view_of(&inner, now)
    }

    /// Updates waiting for this viewer.
    pub fn waiting(&self) -> usize {
        self.mailbox.len()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.live.inner().viewers.retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(second)
    }

    fn event(id: &str) -> Value {
        json!({"type": "track", "event": "E", "userId": "u", "messageId": id,
               "properties": {"n": 1}})
    }

    #[test]
    fn the_ring_keeps_the_newest_n() {
        let live = Live::new(3, None);
        let events: Vec<Value> = (0..7).map(|i| event(&format!("m{i}"))).collect();
        // Across batches, and a batch larger than the ring.
        live.accepted(&events[..2], 0, at(100));
        live.accepted(&events[2..7], 0, at(100));
        let ids: Vec<String> = live
            .view(at(100))
            .rows
            .iter()
            .map(|r| r.message_id.clone())
            .collect();
        assert_eq!(ids, ["m6", "m5", "m4"]);
        live.accepted(&events[..2], 0, at(100));
        let events: Vec<Value> = vec![event("m7"), event("m8")];
        live.accepted(&events, 0, at(100));
        let view = live.view(at(100));
        let ids: Vec<&str> = view.rows.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(ids, ["m8", "m7", "m1"], "newest first, at most 3");
        assert_eq!(view.counters.accepted, 11);
    }

    #[test]
    fn the_chart_counts_per_second_and_forgets_old_seconds() {
        let live = Live::new(10, None);
        live.accepted(&[event("a"), event("b")], 0, at(1000));
        live.accepted(&[event("c")], 0, at(1002));
        let view = live.view(at(1002));
        assert_eq!(view.chart.len(), CHART_SECONDS);
        assert_eq!(view.chart[CHART_SECONDS - 3..], [2, 0, 1]);
        // A span later, second 1000's slot is reused, not added to.
        live.accepted(&[event("d")], 0, at(1000 + CHART_SECONDS as u64));
        let view = live.view(at(1000 + CHART_SECONDS as u64));
        assert_eq!(view.chart.iter().sum::<u64>(), 2, "{:?}", view.chart);
    }

    #[test]
    fn the_key_is_blanked_wherever_it_appears() {
        let live = Live::new(10, Some("s3cret".into()));
        let e = json!({"type": "track", "event": "has s3cret", "messageId": "m",
                       "userId": "s3cret", "properties": {"writeKey": "s3cret"}});
        live.accepted([&e], 0, at(1));
        live.rejected(401, "wrong key s3cret");
        let text = live.view(at(1)).to_json().to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains(KEY_BLANKED), "{text}");
    }

    #[test]
    fn reasons_are_bounded() {
        let live = Live::new(1, None);
        for i in 0..100 {
            live.rejected(400, &format!("event {i} is bad"));
        }
        let c = live.view(at(0)).counters;
        assert_eq!(c.rejected.len(), MAX_REASONS + 1);
        assert_eq!(c.rejected_total(), 100);
    }

    #[test]
    fn a_viewer_gets_each_change_after_its_view() {
        let live = Arc::new(Live::new(10, None));
        live.accepted(&[event("before")], 0, at(1));
        let (sub, view) = live.subscribe(at(1));
        assert_eq!(view.rows.len(), 1);
        live.accepted(&[event("after")], 2, at(2));
        live.injected_failure(503);
        match sub.next(Duration::ZERO) {
            Next::Update(u) => {
                assert!(u.starts_with("event: batch\ndata: "), "{u}");
                assert!(u.contains("\"after\"") && !u.contains("\"before\""), "{u}");
            }
            other => panic!("{other:?}"),
        }
        match sub.next(Duration::ZERO) {
            Next::Update(u) => assert!(u.starts_with("event: stats\n"), "{u}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(live.viewers(), 1);
        drop(sub);
        assert_eq!(live.viewers(), 0);
    }

    #[test]
    fn a_viewer_that_never_reads_holds_a_bounded_queue_and_resyncs() {
        let live = Arc::new(Live::new(5, None));
        let (sub, _) = live.subscribe(at(1));
        for i in 0..(VIEWER_QUEUE * 4) {
            live.accepted(&[event(&format!("m{i}"))], 0, at(2));
        }
        assert_eq!(sub.waiting(), VIEWER_QUEUE);
        assert_eq!(sub.next(Duration::ZERO), Next::Lagged);
        let view = sub.resync(at(2));
        assert_eq!(view.rows.len(), 5);
        assert_eq!(view.counters.accepted, (VIEWER_QUEUE * 4) as u64);
        assert_eq!(sub.next(Duration::ZERO), Next::Idle);
    }

    #[test]
    fn sse_data_is_one_line_with_markup_escaped() {
        let m = sse_message("batch", &json!({"x": "<script>\n&\u{2028}"}));
        let data = m
            .strip_prefix("event: batch\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .unwrap();
        assert!(!data.contains('\n') && !data.contains('<') && !data.contains('&'));
        let back: Value = serde_json::from_str(data).unwrap();
        assert_eq!(back["x"], "<script>\n&\u{2028}");
    }
}
