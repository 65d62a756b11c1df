//! What the collector accepts, judged the way Segment's HTTP Tracking API
//! judges it, so a test against `outbox collect` says something about
//! Segment (and RudderStack, which reads the same contract).
//!
//! - Routes: `POST /v1/batch` (`{"batch": [...], "sentAt", "context",
//!   "integrations", "writeKey"}`) and the single-event routes `/v1/track`,
//!   `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`
//!   (one event as the body; its `type` comes from the route when absent).
//! - The write key: HTTP Basic user name (what every Segment SDK sends:
//!   analytics-python, analytics-node, analytics-go, rudder-sdk-python),
//!   Bearer, or `writeKey` in the body (analytics-python puts it there too).
//! - Limits: an event over 32 KiB or a batch over 500 000 bytes is a 400,
//!   as Segment answers ("The batch API endpoint accepts a maximum of 500KB
//!   per request, with a limit of 32KB per event in the batch. If these
//!   limits are exceeded, Segment returns a 400 Bad Request error.").
//! - An event without `messageId` is accepted and given one (Segment adds
//!   one to every payload); such events are counted apart, since nothing
//!   can deduplicate them.
//! - A batch's own `context` and `integrations` are merged into each event
//!   (the event's own keys win), as analytics-go sends its default context
//!   at batch level.

use std::io::Read;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::http::Request;
use super::Config;

/// Segment's largest batch request, in bytes.
pub const SEGMENT_MAX_BATCH_BYTES: usize = 500_000;
/// Segment's largest event, in bytes.
pub const SEGMENT_MAX_EVENT_BYTES: usize = 32 * 1024;

/// The single-event routes, by call type.
pub const SINGLE_ROUTES: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];

/// What a request path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v1/batch`.
    Batch,
    /// `/v1/<type>` with one event.
    Single(&'static str),
}

/// The route of `path` (query ignored); `None` for anything else.
pub fn route(path: &str) -> Option<Route> {
    let path = path.split('?').next().unwrap_or("");
    let name = path.strip_prefix("/v1/")?.trim_end_matches('/');
    if name == "batch" {
        return Some(Route::Batch);
    }
    SINGLE_ROUTES
        .iter()
        .find(|r| **r == name)
        .map(|r| Route::Single(r))
}

/// A request that failed a check before faults or commit.
#[derive(Debug)]
pub struct Refusal {
    /// The status to answer.
    pub status: u16,
    /// Why, for the answer and the log.
    pub reason: String,
    /// Events in the request, when known.
    pub events: usize,
}

fn refuse(status: u16, reason: impl Into<String>, events: usize) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
        events,
    }
}

/// The events of an accepted request.
#[derive(Debug)]
pub struct Accepted {
    /// Each event with its `messageId` (assigned when it had none).
    pub events: Vec<(String, Value)>,
    /// How many of them had no `messageId`.
    pub assigned: usize,
}

/// The key a request presents in its `Authorization` header, if any.
fn header_key(req: &Request) -> Option<String> {
    let auth = req.header("authorization")?;
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        return Some(user.to_string());
    }
    None
}

/// The body with any Content-Encoding undone, within the batch limit.
fn decode_body(req: &Request, limit: usize, too_large: u16) -> Result<Vec<u8>, Refusal> {
    let encoding = req
        .header("content-encoding")
        .unwrap_or("identity")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(req.body.clone()),
        "gzip" | "x-gzip" => {
            // Every member (RFC 1952 2.2), not just the first: a body sent
            // as several members is one body. The decoder stops at the
            // limit + 1 byte, so a bomb costs at most that much memory.
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&req.body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| refuse(400, format!("gzip body does not decode: {e}"), 0))?;
            if out.len() > limit {
                return Err(refuse(
                    too_large,
                    format!("decoded body exceeds the limit of {limit} bytes"),
                    0,
                ));
            }
            Ok(out)
        }
        other => Err(refuse(
            415,
            format!("Content-Encoding {other} is not supported"),
            0,
        )),
    }
}

/// Whether `value` holds an object key `name` at any depth.
fn has_field(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => map.contains_key(name) || map.values().any(|v| has_field(v, name)),
        Value::Array(items) => items.iter().any(|v| has_field(v, name)),
        _ => false,
    }
}

/// The largest body accepted and the status for a larger one: 413 under a
/// configured `max_batch_bytes` below Segment's limit (a stricter server,
/// for tests), else Segment's 400 above 500 000 bytes.
pub fn body_limit(config: &Config) -> (usize, u16) {
    match config.max_batch_bytes {
        Some(n) if n <= SEGMENT_MAX_BATCH_BYTES => (n, 413),
        _ => (SEGMENT_MAX_BATCH_BYTES, 400),
    }
}

/// Check a request on `route` and return its events, envelope merged in.
pub fn accept(config: &Config, req: &Request, route: Route) -> Result<Accepted, Refusal> {
    let (limit, too_large) = body_limit(config);
    let header = header_key(req);
    let body = match decode_body(req, limit, too_large) {
        Ok(b) => b,
        // Without a right key in the header, say 401 first.
        Err(r) if config.key.is_some() && header != config.key => {
            return Err(refuse(401, "missing or wrong write key", r.events))
        }
        Err(r) => return Err(r),
    };
    let mut doc: Result<Value, _> = serde_json::from_slice(&body);
    if let (Ok(doc), Ok(text)) = (&mut doc, std::str::from_utf8(&body)) {
        // Committed events keep their numbers as the client wrote them.
        crate::cmd::input::keep_number_text(text, doc);
    }
    if let Some(key) = &config.key {
        let in_body = doc
            .as_ref()
            .ok()
            .and_then(|d| d.get("writeKey"))
            .and_then(Value::as_str);
        if header.as_deref() != Some(key.as_str()) && in_body != Some(key.as_str()) {
            return Err(refuse(401, "missing or wrong write key", 0));
        }
    }
    let doc = doc.map_err(|e| refuse(400, format!("body is not JSON: {e}"), 0))?;
    let Value::Object(mut doc) = doc else {
        return Err(refuse(400, "body is not a JSON object", 0));
    };
    let (events, context, integrations) = match route {
        Route::Batch => {
            let Some(Value::Array(batch)) = doc.remove("batch") else {
                return Err(refuse(400, "body has no \"batch\" array", 0));
            };
            (batch, doc.remove("context"), doc.remove("integrations"))
        }
        Route::Single(kind) => {
            doc.remove("writeKey");
            doc.remove("sentAt");
            doc.entry("type")
                .or_insert_with(|| Value::String(kind.to_string()));
            (vec![Value::Object(doc)], None, None)
        }
    };
    let count = events.len();
    let mut accepted = Accepted {
        events: Vec::with_capacity(count),
        assigned: 0,
    };
    for (i, event) in events.into_iter().enumerate() {
        let Value::Object(mut event) = event else {
            return Err(refuse(
                400,
                format!("event {i} is not a JSON object"),
                count,
            ));
        };
        merge_envelope(&mut event, "context", context.as_ref());
        merge_envelope(&mut event, "integrations", integrations.as_ref());
        let size = serde_json::to_vec(&event).map_or(usize::MAX, |b| b.len());
        if size > SEGMENT_MAX_EVENT_BYTES {
            return Err(refuse(
                400,
                format!("event {i} is {size} bytes, over the {SEGMENT_MAX_EVENT_BYTES}-byte limit"),
                count,
            ));
        }
        let id = match event.get("messageId") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            None | Some(Value::Null) => {
                let id = format!("collect-{}", uuid::Uuid::new_v4());
                event.insert("messageId".into(), Value::String(id.clone()));
                accepted.assigned += 1;
                id
            }
            Some(_) => {
                return Err(refuse(
                    400,
                    format!("event {i} has a \"messageId\" that is not a string"),
                    count,
                ))
            }
        };
        let event = Value::Object(event);
        if let Some(field) = &config.reject_field {
            if has_field(&event, field) {
                return Err(refuse(
                    400,
                    format!("event {id} holds the rejected field \"{field}\""),
                    count,
                ));
            }
        }
        accepted.events.push((id, event));
    }
    Ok(accepted)
}

/// Merge the envelope's `field` object into the event's (the event wins).
fn merge_envelope(event: &mut Map<String, Value>, field: &str, envelope: Option<&Value>) {
    let Some(Value::Object(defaults)) = envelope else {
        return;
    };
    match event.get_mut(field) {
        Some(Value::Object(mine)) => outbox_std::merge_missing(mine, defaults),
        None | Some(Value::Null) => {
            event.insert(field.to_string(), Value::Object(defaults.clone()));
        }
        Some(_) => {}
    }
}

/// The `code` of a Segment-style error body for `status`.
pub fn error_code(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 | 403 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        431 => "headers_too_large",
        505 => "version_not_supported",
        s if s >= 500 => "server_error",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(path: &str, headers: &[(&str, &str)], body: &Value) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_string().into_bytes(),
            keep_alive: true,
        }
    }

    fn keyed() -> Config {
        Config {
            key: Some("wk".into()),
            ..Config::default()
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v1/batch"), Some(Route::Batch));
        assert_eq!(route("/v1/track?x=1"), Some(Route::Single("track")));
        assert_eq!(route("/v1/alias/"), Some(Route::Single("alias")));
        assert_eq!(route("/v1/import"), None);
        assert_eq!(route("/batch"), None);
    }

    #[test]
    fn the_key_may_be_in_the_body() {
        let body = json!({"writeKey": "wk", "batch": [{"messageId": "m", "type": "track"}]});
        assert!(accept(&keyed(), &req("/v1/batch", &[], &body), Route::Batch).is_ok());
        let wrong = json!({"writeKey": "nope", "batch": []});
        let r = accept(&keyed(), &req("/v1/batch", &[], &wrong), Route::Batch).unwrap_err();
        assert_eq!(r.status, 401);
        // Basic "wk:" in the header.
        let r = req(
            "/v1/batch",
            &[("Authorization", "Basic d2s6")],
            &json!({"batch": []}),
        );
        assert!(accept(&keyed(), &r, Route::Batch).is_ok());
    }

    #[test]
    fn envelope_context_and_integrations_merge_under_the_events_own() {
        let body = json!({
            "context": {"library": {"name": "analytics-go"}, "ip": "1.1.1.1"},
            "integrations": {"All": false},
            "batch": [
                {"messageId": "a", "context": {"ip": "2.2.2.2"}},
                {"messageId": "b", "integrations": {"Mixpanel": true}}
            ]
        });
        let got = accept(
            &Config::default(),
            &req("/v1/batch", &[], &body),
            Route::Batch,
        )
        .unwrap();
        let a = &got.events[0].1;
        assert_eq!(a["context"]["ip"], "2.2.2.2");
        assert_eq!(a["context"]["library"]["name"], "analytics-go");
        assert_eq!(a["integrations"], json!({"All": false}));
        let b = &got.events[1].1;
        assert_eq!(b["integrations"], json!({"All": false, "Mixpanel": true}));
        assert_eq!(b["context"]["ip"], "1.1.1.1");
    }

    #[test]
    fn missing_ids_are_assigned_and_counted() {
        let body = json!({"batch": [{"type": "track"}, {"messageId": "m"}, {"messageId": null}]});
        let got = accept(
            &Config::default(),
            &req("/v1/batch", &[], &body),
            Route::Batch,
        )
        .unwrap();
        assert_eq!(got.assigned, 2);
        assert!(got.events[0].0.starts_with("collect-"));
        assert_eq!(got.events[0].1["messageId"], got.events[0].0.as_str());
        let bad = json!({"batch": [{"messageId": 7}]});
        let r = accept(
            &Config::default(),
            &req("/v1/batch", &[], &bad),
            Route::Batch,
        );
        assert_eq!(r.unwrap_err().status, 400);
    }

    #[test]
    fn an_event_over_32_kib_is_a_400() {
        let big = "x".repeat(SEGMENT_MAX_EVENT_BYTES);
        let body = json!({"batch": [{"messageId": "m", "properties": {"s": big}}]});
        let r = accept(
            &Config::default(),
            &req("/v1/batch", &[], &body),
            Route::Batch,
        );
        let r = r.unwrap_err();
        assert_eq!(r.status, 400);
        assert!(r.reason.contains("limit"), "{}", r.reason);
    }

    #[test]
    fn a_single_event_route_takes_its_type_from_the_path() {
        let body = json!({"userId": "u", "traits": {"a": 1}, "writeKey": "wk"});
        let got = accept(
            &keyed(),
            &req("/v1/identify", &[], &body),
            Route::Single("identify"),
        )
        .unwrap();
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].1["type"], "identify");
        assert!(got.events[0].1.get("writeKey").is_none());
        assert_eq!(got.assigned, 1);
    }
}
