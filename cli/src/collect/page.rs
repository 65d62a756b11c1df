//! The live events page (`outbox collect --ui`): its routes, its files
//! (embedded in the binary, no build step, nothing fetched from elsewhere)
//! and the server-rendered HTML that works with JavaScript off.
//!
//! The page is rendered in full on the server (counters, rejections, the
//! chart as SVG, the newest events as a table, filtered by `?q=`) and
//! refreshes itself every 2 s through `<noscript><meta refresh>`; with
//! JavaScript on, `page.js` takes it over and follows `/events` (see
//! [`super::sse`]). Every value that came from a client is escaped here with
//! [`escape_html`]; the script only ever sets `textContent`. The page is
//! served with a Content-Security-Policy that runs no inline script, so
//! markup smuggled past both would still not run.

use std::fmt::Write as _;

use super::http::Response;
use super::live::{View, CHART_DURATION, CHART_SECONDS};

/// The page's HTML template (`{{name}}` marks a value filled in here).
const PAGE_HTML: &str = include_str!("ui/page.html");
/// The script that keeps the page live.
const PAGE_JS: &str = include_str!("ui/page.js");
/// The page's style sheet.
const PAGE_CSS: &str = include_str!("ui/page.css");

/// Rows the server-rendered table shows (the script shows every kept one).
pub const RENDERED_ROWS: usize = 200;

/// Everything the page may load from this origin, and nothing inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// What a GET for the page asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UiRoute {
    /// The page, its table filtered by this text (`?q=`).
    Page(String),
    /// `page.js`.
    Script,
    /// `page.css`.
    Style,
    /// The Server-Sent Events stream.
    Events,
}

/// The page's route for a request target, `None` when it is not one.
pub fn route(target: &str) -> Option<UiRoute> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" | "/ui" | "/ui/" => Some(UiRoute::Page(query_param(query, "q").unwrap_or_default())),
        "/page.js" => Some(UiRoute::Script),
        "/page.css" => Some(UiRoute::Style),
        "/events" => Some(UiRoute::Events),
        _ => None,
    }
}

/// The answer for a static route or the page (not for [`UiRoute::Events`]).
pub fn respond(route: &UiRoute, view: impl FnOnce() -> View) -> Response {
    let (content_type, body) = match route {
        UiRoute::Page(filter) => ("text/html; charset=utf-8", render(&view(), filter)),
        UiRoute::Script => ("text/javascript; charset=utf-8", PAGE_JS.to_string()),
        UiRoute::Style => ("text/css; charset=utf-8", PAGE_CSS.to_string()),
        UiRoute::Events => ("text/plain; charset=utf-8", String::new()),
    };
    let mut r = Response::json(200, body);
    r.content_type = content_type;
    r.headers = vec![
        ("Content-Security-Policy", CSP.to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("Cache-Control", "no-store".to_string()),
    ];
    r
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page as of `view`, its table filtered by `filter`.
pub fn render(view: &View, filter: &str) -> String {
    let c = &view.counters;
    let mut out = String::with_capacity(PAGE_HTML.len() + 256 * RENDERED_ROWS);
    // One pass over the template: what is filled in is never scanned again,
    // so client text holding `{{rows}}` stays text.
    let mut rest = PAGE_HTML;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            rest = &rest[start..];
            break;
        };
        let name = &rest[start + 2..start + len];
        rest = &rest[start + len + 2..];
        match name {
            "capacity" => push(&mut out, view.capacity),
            "accepted" => push(&mut out, c.accepted),
            "duplicates" => push(&mut out, c.duplicates),
            "rejected" => push(&mut out, c.rejected_total()),
            "faults" => push(&mut out, c.faults_total()),
            "peak" => {
                let peak = view.chart.iter().max().copied().unwrap_or(0);
                let _ = write!(out, "(peak {peak}/s)");
            }
            "chart" => chart(&mut out, &view.chart),
            "chart_seconds" => push(&mut out, CHART_SECONDS),
            "chart_span" => out.push_str(&span(CHART_DURATION)),
            "now" => {
                let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(view.chart_end);
                let _ = write!(out, "{}", humantime::format_rfc3339_seconds(now));
            }
            "rejections" => {
                for r in &c.rejected {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        r.status,
                        escape_html(&r.reason),
                        r.count
                    );
                }
            }
            "fault_list" => {
                let mut line = |what: &str, n: u64| {
                    let _ = write!(out, "<tr><td>{what}</td><td>{n}</td></tr>");
                };
                for (status, n) in &c.failures {
                    line(&format!("answered {status}"), *n);
                }
                if c.dropped_responses > 0 {
                    line("committed, answer dropped", c.dropped_responses);
                }
                if c.refused > 0 {
                    line("connections refused", c.refused);
                }
            }
            "filter" => out.push_str(&escape_html(filter)),
            "shown" | "rows" => rows(&mut out, name, view, filter),
            // A template typo shows up on the page rather than vanishing.
            other => {
                let _ = write!(out, "{{{{{}}}}}", escape_html(other));
            }
        }
    }
    out.push_str(rest);
    out
}

/// "2 minutes", "90 seconds".
fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        60 => "minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn push(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn rows(out: &mut String, which: &str, view: &View, filter: &str) {
    let matching = view.rows.iter().filter(|r| r.matches(filter));
    if which == "shown" {
        let n = matching.count();
        let shown = n.min(RENDERED_ROWS);
        let kept = view.rows.len();
        if filter.trim().is_empty() {
            let _ = write!(
                out,
                "the last {shown} of {kept} events kept (at most {}), newest first",
                view.capacity
            );
        } else {
            let _ = write!(out, "{shown} of the last {kept} events match");
        }
        return;
    }
    for row in matching.take(RENDERED_ROWS) {
        out.push_str("<tr>");
        for field in row.fields() {
            out.push_str("<td>");
            out.push_str(&escape_html(field));
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
}

/// One bar per second, as tall as its share of the peak (the viewBox is
/// `CHART_SECONDS` wide and 60 high).
fn chart(out: &mut String, counts: &[u64]) {
    let peak = counts.iter().max().copied().unwrap_or(0).max(1);
    let first = CHART_SECONDS.saturating_sub(counts.len());
    for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let h = (*n as f64 / peak as f64 * 58.0).max(1.0);
        let _ = write!(
            out,
            r#"<rect x="{}" y="{:.1}" width="1" height="{h:.1}"/>"#,
            first + i,
            60.0 - h
        );
    }
}

/// The value of `name` in a query string, `+` and `%XX` decoded (bad
/// escapes kept as written, bytes that are not UTF-8 replaced).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let digits = &bytes[i + 1..i + 3];
                let hex = std::str::from_utf8(digits)
                    .ok()
                    .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::live::Live;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn routes_and_the_filter_query() {
        assert_eq!(route("/"), Some(UiRoute::Page(String::new())));
        assert_eq!(
            route("/?q=Order+Completed%21"),
            Some(UiRoute::Page("Order Completed!".into()))
        );
        assert_eq!(
            route("/?q=%zz%+1%4"),
            Some(UiRoute::Page("%zz% 1%4".into()))
        );
        assert_eq!(route("/events"), Some(UiRoute::Events));
        assert_eq!(route("/page.js"), Some(UiRoute::Script));
        assert_eq!(route("/v1/batch"), None);
    }

    #[test]
    fn client_text_is_escaped_and_never_fills_a_marker() {
        let live = Live::new(10, None);
        let evil = "<script>alert(1)</script>\"'&{{rows}}";
        let e = json!({"type": evil, "event": evil, "userId": evil, "messageId": evil,
                       "properties": {"p": evil}});
        let at = UNIX_EPOCH + Duration::from_secs(5);
        live.accepted([&e], 0, at);
        live.rejected(400, evil);
        let html = render(&live.view(at), evil);
        assert_eq!(html.matches("<script").count(), 1, "only our own: {html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;{{rows}}"));
        assert!(!html.contains("\"'&{{"), "{html}");
    }

    #[test]
    fn the_filter_picks_rows() {
        let live = Live::new(10, None);
        let at = UNIX_EPOCH;
        let a = json!({"type": "track", "event": "Signed Up", "messageId": "m-a"});
        let b = json!({"type": "track", "event": "Order Completed", "messageId": "m-b"});
        live.accepted([&a, &b], 0, at);
        let html = render(&live.view(at), "order");
        assert!(html.contains("m-b") && !html.contains("m-a"), "{html}");
    }
}
