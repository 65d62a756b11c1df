//! `outbox send`'s input: one JSON object per line, read with a bound on
//! line length so a runaway line cannot exhaust memory. A line is an event,
//! or a whole Segment request body `{"batch": [...], "context": ...}` as an
//! SDK would POST it, whose events are taken one by one with the envelope's
//! `context` and `integrations` merged in (the event's own keys win).
//! Numbers keep the exact text they were written with (serde_json's
//! `arbitrary_precision`). Lines are read on a thread of their own
//! ([`Feed`]), so a stalled pipe or an endless line cannot outlast
//! `--timeout`.

use std::io::{self, BufRead};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Instant;

use serde_json::{Map, Value};

/// One input line, judged.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// A JSON object.
    Event(Map<String, Value>),
    /// Empty or whitespace only: ignored, not counted.
    Blank,
    /// Anything else, with the reason.
    Bad(String),
}

/// Reads judged lines, numbering them from 1.
pub struct Lines<R> {
    reader: R,
    line_no: u64,
    max_line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Lines longer than `max_line` bytes are [`Line::Bad`] without being
    /// kept in memory.
    pub fn new(reader: R, max_line: usize) -> Self {
        Lines {
            reader,
            line_no: 0,
            max_line,
            buf: Vec::new(),
        }
    }

    /// The next line and its number; `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line)>> {
        self.buf.clear();
        let limit = self.max_line as u64 + 1;
        let n = io::Read::take(&mut self.reader, limit).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() != Some(&b'\n') && self.buf.len() > self.max_line {
            // Too long: skip the rest of it.
            loop {
                let (done, used) = {
                    let chunk = self.reader.fill_buf()?;
                    if chunk.is_empty() {
                        (true, 0)
                    } else if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
                        (true, i + 1)
                    } else {
                        (false, chunk.len())
                    }
                };
                self.reader.consume(used);
                if done {
                    break;
                }
            }
            let reason = format!(
                "line is over {} bytes, beyond the event size limit",
                self.max_line
            );
            return Ok(Some((self.line_no, Line::Bad(reason))));
        }
        // A UTF-8 byte order mark (some Windows editors write one) marks
        // the start of the input, not a part of line 1.
        let text = match self.buf.strip_prefix(BOM) {
            Some(rest) if self.line_no == 1 => rest,
            _ => &self.buf[..],
        };
        Ok(Some((self.line_no, judge(text))))
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Judged lines read ahead by a thread, received with a deadline.
pub struct Feed {
    rx: Receiver<io::Result<(u64, Line)>>,
}

/// What [`Feed::next`] got instead of a line.
#[derive(Debug)]
pub enum FeedEnd {
    /// The input ended.
    Done,
    /// The deadline passed while waiting for the next line.
    TimedOut,
    /// Reading failed.
    Failed(io::Error),
}

/// Lines judged ahead of the consumer.
const READ_AHEAD: usize = 256;

impl Feed {
    /// Reads `reader` on a thread. The thread stops at the end of input, at
    /// a read error, or once the `Feed` is dropped and it has a line to give;
    /// one blocked forever in a read ends with the process.
    pub fn spawn<R: BufRead + Send + 'static>(reader: R, max_line: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
        thread::Builder::new()
            .name("outbox-input".into())
            .spawn(move || {
                let mut lines = Lines::new(reader, max_line);
                loop {
                    let next = lines.next_line().transpose();
                    let stop = !matches!(next, Some(Ok(_)));
                    match next {
                        Some(item) => {
                            if tx.send(item).is_err() || stop {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            })?;
        Ok(Feed { rx })
    }

    /// The next line, waiting at most until `deadline`.
    pub fn next(&self, deadline: Option<Instant>) -> Result<(u64, Line), FeedEnd> {
        let got = match deadline {
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match got {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(FeedEnd::Failed(e)),
            Err(RecvTimeoutError::Timeout) => Err(FeedEnd::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(FeedEnd::Done),
        }
    }
}

fn judge(raw: &[u8]) -> Line {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Bad("not UTF-8".into());
    };
    let text = text.trim();
    if text.is_empty() {
        return Line::Blank;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut value @ Value::Object(_)) => {
            keep_number_text(text, &mut value);
            match value {
                Value::Object(map) => Line::Event(map),
                _ => Line::Bad("not a JSON object".into()),
            }
        }
        Ok(other) => Line::Bad(format!("not a JSON object (found {})", kind(&other))),
        Err(e) => Line::Bad(format!("not JSON: {e}")),
    }
}

/// Gives every number in `value` (parsed from the JSON `text`) the exact
/// text it has in `text`.
///
/// serde_json's `arbitrary_precision` keeps a number's digits, but its
/// parser still spells some numbers its own way: `1e400` becomes `1e+400`,
/// `1E5` becomes `1e+5`. The README promises the text as written, so the
/// number's own slice of `text` (found with `RawValue`, which never
/// re-spells anything) replaces it; a number whose text already matches is
/// left alone. A `text` that does not match `value` changes nothing.
///
/// `Number::from_string_unchecked` is the only way serde_json offers to hold
/// a given text (its parser always re-spells); the slice it gets is one the
/// parser just accepted as a JSON number, so the "unchecked" holds.
/// `keeps_the_exact_text_of_every_number` pins that behaviour.
pub fn keep_number_text(text: &str, value: &mut Value) {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;

    /// Whether `v` holds a number anywhere (only those are worth a look).
    fn has_number(v: &Value) -> bool {
        match v {
            Value::Number(_) => true,
            Value::Array(items) => items.iter().any(has_number),
            Value::Object(map) => map.values().any(has_number),
            _ => false,
        }
    }

    match value {
        Value::Number(n) => {
            let raw = text.trim();
            if n.as_str() != raw && serde_json::from_str::<serde_json::Number>(raw).is_ok() {
                *n = serde_json::Number::from_string_unchecked(raw.to_owned());
            }
        }
        Value::Array(items) if items.iter().any(has_number) => {
            let Ok(raws) = serde_json::from_str::<Vec<&RawValue>>(text) else {
                return;
            };
            if raws.len() == items.len() {
                for (raw, item) in raws.iter().zip(items) {
                    keep_number_text(raw.get(), item);
                }
            }
        }
        Value::Object(map) if map.values().any(has_number) => {
            // Like `Value`, the last of two equal keys wins.
            let Ok(raws) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) else {
                return;
            };
            for (key, item) in map.iter_mut() {
                if let Some(raw) = raws.get(key) {
                    keep_number_text(raw.get(), item);
                }
            }
        }
        _ => {}
    }
}

/// The events one JSON object line holds: itself, or the items of a
/// `{"batch": [...]}` envelope (an object with a `batch` array and no
/// `type` or `event` of its own). `Err` names the first item that is not an
/// object.
pub fn events_of(mut line: Map<String, Value>) -> Result<Vec<Map<String, Value>>, String> {
    let envelope = matches!(line.get("batch"), Some(Value::Array(_)))
        && !line.contains_key("type")
        && !line.contains_key("event");
    if !envelope {
        return Ok(vec![line]);
    }
    let Some(Value::Array(items)) = line.remove("batch") else {
        return Ok(Vec::new());
    };
    let shared: Vec<(&str, Map<String, Value>)> = ["context", "integrations"]
        .into_iter()
        .filter_map(|k| match line.get(k) {
            Some(Value::Object(m)) => Some((k, m.clone())),
            _ => None,
        })
        .collect();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut event) = item else {
            return Err(format!(
                "batch item {i} is not a JSON object (found {})",
                kind(&item)
            ));
        };
        for (field, defaults) in &shared {
            match event.get_mut(*field) {
                Some(Value::Object(mine)) => outbox_std::merge_missing(mine, defaults),
                None | Some(Value::Null) => {
                    event.insert(field.to_string(), Value::Object(defaults.clone()));
                }
                Some(_) => {}
            }
        }
        events.push(event);
    }
    Ok(events)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str, max: usize) -> Vec<(u64, Line)> {
        let mut lines = Lines::new(io::Cursor::new(input.as_bytes().to_vec()), max);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn judges_each_line() {
        let got = all(
            "{\"a\":1}\n\n  \n[1]\nnope\n{\"b\":\"x\"}\r\n{\"c\":3}",
            100,
        );
        let kinds: Vec<(u64, &str)> = got
            .iter()
            .map(|(n, l)| {
                (
                    *n,
                    match l {
                        Line::Event(_) => "event",
                        Line::Blank => "blank",
                        Line::Bad(_) => "bad",
                    },
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (1, "event"),
                (2, "blank"),
                (3, "blank"),
                (4, "bad"),
                (5, "bad"),
                (6, "event"),
                (7, "event")
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_whole() {
        let long = "x".repeat(500);
        let got = all(&format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n"), 50);
        assert_eq!(got.len(), 3);
        assert!(matches!(got[1], (2, Line::Bad(_))));
        assert!(matches!(&got[2], (3, Line::Event(m)) if m.contains_key("b")));
    }

    #[test]
    fn a_feed_gives_every_line_then_done_and_honours_its_deadline() {
        let feed = Feed::spawn(io::Cursor::new(b"{}\n{}\n".to_vec()), 100).unwrap();
        assert!(matches!(feed.next(None), Ok((1, Line::Event(_)))));
        assert!(matches!(feed.next(None), Ok((2, Line::Event(_)))));
        assert!(matches!(feed.next(None), Err(FeedEnd::Done)));
        // A reader that never answers: the deadline ends the wait.
        struct Stalled;
        impl io::Read for Stalled {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(0)
            }
        }
        let feed = Feed::spawn(io::BufReader::new(Stalled), 100).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        assert!(matches!(feed.next(Some(deadline)), Err(FeedEnd::TimedOut)));
    }

    #[test]
    fn an_envelope_line_yields_its_events_with_the_envelope_merged() {
        let line = serde_json::json!({
            "batch": [{"type": "track", "event": "a", "context": {"ip": "1"}}, {"type": "identify"}],
            "context": {"ip": "0", "library": {"name": "analytics-python"}},
            "integrations": {"All": true},
            "sentAt": "2026-01-01T00:00:00Z"
        });
        let Value::Object(map) = line else {
            unreachable!()
        };
        let events = events_of(map).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["context"]["ip"], "1");
        assert_eq!(events[0]["context"]["library"]["name"], "analytics-python");
        assert_eq!(events[1]["context"]["ip"], "0");
        assert_eq!(events[1]["integrations"]["All"], true);
        let plain = serde_json::json!({"type": "track", "event": "x", "batch": [1]});
        let Value::Object(map) = plain else {
            unreachable!()
        };
        assert_eq!(
            events_of(map).unwrap().len(),
            1,
            "an event with a batch property"
        );
        let bad = serde_json::json!({"batch": [{}, 3]});
        let Value::Object(map) = bad else {
            unreachable!()
        };
        assert!(events_of(map).unwrap_err().contains("batch item 1"));
    }

    #[test]
    fn keeps_the_exact_text_of_every_number() {
        let text =
            r#"{"a":1e400,"b":-0,"c":[1E5,{"d":-0e0}],"e":1.10,"f":"1e400","a ":2.5E+3,"g":7}"#;
        let mut value: Value = serde_json::from_str(text).unwrap();
        keep_number_text(text, &mut value);
        let out = serde_json::to_string(&value).unwrap();
        for part in [
            r#""a":1e400"#,
            r#""b":-0"#,
            r#""c":[1E5,{"d":-0e0}]"#,
            r#""e":1.10"#,
            r#""f":"1e400""#,
            r#""a ":2.5E+3"#,
            r#""g":7"#,
        ] {
            assert!(out.contains(part), "{part} not in {out}");
        }
        // A BOM starts only the input.
        let mut lines = Lines::new(
            io::Cursor::new(b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF{}\n".to_vec()),
            100,
        );
        assert!(matches!(
            lines.next_line().unwrap(),
            Some((1, Line::Event(_)))
        ));
        assert!(matches!(
            lines.next_line().unwrap(),
            Some((2, Line::Bad(_)))
        ));
    }

    #[test]
    fn invalid_utf8_is_bad() {
        let mut lines = Lines::new(io::Cursor::new(b"\xff\xfe\n{}\n".to_vec()), 100);
        assert!(matches!(
            lines.next_line().unwrap(),
            Some((1, Line::Bad(_)))
        ));
        assert!(matches!(
            lines.next_line().unwrap(),
            Some((2, Line::Event(_)))
        ));
    }
}
