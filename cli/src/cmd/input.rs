//! `outbox send`'s input: one JSON object per line, read with a bound on
//! line length so a runaway line cannot exhaust memory. A line is an event,
//! or a whole Segment request body `{"batch": [...], "context": ...}` as an
//! SDK would POST it, whose events are taken one by one with the envelope's
//! `context` and `integrations` merged in (the event's own keys win).
//! Numbers keep the exact text they were written with (serde_json's
//! `arbitrary_precision`).

use std::io::{self, BufRead};

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
        Ok(Some((self.line_no, judge(&self.buf))))
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
        Ok(Value::Object(map)) => Line::Event(map),
        Ok(other) => Line::Bad(format!("not a JSON object (found {})", kind(&other))),
        Err(e) => Line::Bad(format!("not JSON: {e}")),
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
