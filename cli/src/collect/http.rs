//! Just enough HTTP/1.1 for the collector: read one request at a time from a
//! kept-alive connection (Content-Length or chunked bodies, bounded sizes),
//! write one response. Anything malformed is an [`HttpError`] that names the
//! status to answer with; nothing here panics on what a client sends.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;

/// One request, body read in full (still encoded as sent).
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body bytes as sent (before any Content-Encoding is undone).
    pub body: Vec<u8>,
    /// Whether the client asked to keep the connection open.
    pub keep_alive: bool,
}

impl Request {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum HttpError {
    /// The connection failed or timed out; nothing can be answered.
    Io(io::Error),
    /// The request is malformed or too large: answer with this status, then close.
    Bad {
        /// Status to answer.
        status: u16,
        /// Why, for the answer and the log.
        reason: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "connection error: {e}"),
            HttpError::Bad { status, reason } => write!(f, "{status}: {reason}"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn bad(status: u16, reason: impl Into<String>) -> HttpError {
    HttpError::Bad {
        status,
        reason: reason.into(),
    }
}

/// Reads one line ending in `\n` (at most [`MAX_LINE`] bytes), without the
/// line ending. `Ok(None)` on a clean end of stream before any byte.
fn read_line<R: BufRead>(r: &mut R) -> Result<Option<String>, HttpError> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() > MAX_LINE {
            return Err(bad(431, "header line too long"));
        }
        return Err(HttpError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad(400, "request head is not UTF-8"))
}

/// What [`read_request`] may let through.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body accepted on the wire; a larger one is refused with
    /// `too_large_status` before it is read.
    pub max_body: usize,
    /// 400 as Segment answers, or 413.
    pub too_large_status: u16,
}

/// Reads the next request. `Ok(None)` when the client closed the connection
/// between requests. A client that sent `Expect: 100-continue` (curl does,
/// for larger bodies) is told to go on through `interim` once the head passed
/// the size check.
pub fn read_request<R: BufRead>(
    r: &mut R,
    limits: Limits,
    interim: &mut dyn Write,
) -> Result<Option<Request>, HttpError> {
    // Tolerate blank lines before a request line (RFC 9112 2.2).
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (method, path, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v), None) if !m.is_empty() && !p.is_empty() => (m, p, v),
        _ => return Err(bad(400, "malformed request line")),
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad(505, "only HTTP/1.0 and HTTP/1.1 are served")),
    };
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(r)? else {
            return Err(HttpError::Io(io::ErrorKind::UnexpectedEof.into()));
        };
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(bad(431, "too many headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(400, "malformed header line"));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = find("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let (chunked, declared) = body_framing(&headers)?;
    let expects_continue = find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && !http10 && declared.is_none_or(|n| n <= limits.max_body) {
        interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        interim.flush()?;
    }
    let body = if chunked {
        read_chunked(r, limits)?
    } else if let Some(len) = declared {
        if len > limits.max_body {
            return Err(bad(
                limits.too_large_status,
                format!(
                    "body of {len} bytes exceeds the limit of {}",
                    limits.max_body
                ),
            ));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        body
    } else if method == "POST" || method == "PUT" {
        return Err(bad(411, "Content-Length required"));
    } else {
        Vec::new()
    };
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
        keep_alive,
    }))
}

/// How the body's end is known (RFC 9112 6.3): `(chunked, Content-Length)`.
/// Refused with 400, as the RFC asks of a server, when it is ambiguous (the
/// door to request smuggling): Transfer-Encoding together with
/// Content-Length, Content-Length values that differ, one that is not a
/// plain decimal number, or a transfer coding that does not end in
/// `chunked`. Repeating the same length (in several headers or as a list in
/// one) is one length (RFC 9110 8.6).
fn body_framing(headers: &[(String, String)]) -> Result<(bool, Option<usize>), HttpError> {
    let mut length: Option<u64> = None;
    let mut has_length = false;
    let mut codings: Vec<String> = Vec::new();
    for (name, value) in headers {
        match name.as_str() {
            "content-length" => {
                has_length = true;
                for item in value.split(',').map(str::trim) {
                    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad(400, "Content-Length is not a number"));
                    }
                    // Too many digits for any length: beyond every limit.
                    let n = item.parse::<u64>().unwrap_or(u64::MAX);
                    match length {
                        Some(seen) if seen != n => {
                            return Err(bad(400, "conflicting Content-Length values"))
                        }
                        _ => length = Some(n),
                    }
                }
            }
            "transfer-encoding" => codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            ),
            _ => {}
        }
    }
    if codings.is_empty() {
        let length = length.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        return Ok((false, length));
    }
    if has_length {
        return Err(bad(
            400,
            "both Transfer-Encoding and Content-Length: the body's end is ambiguous",
        ));
    }
    if codings.last().map(String::as_str) != Some("chunked") {
        return Err(bad(400, "a Transfer-Encoding that does not end in chunked"));
    }
    if codings.len() > 1 {
        return Err(bad(
            501,
            "transfer codings other than chunked are not served",
        ));
    }
    Ok((true, None))
}

fn read_chunked<R: BufRead>(r: &mut R, limits: Limits) -> Result<Vec<u8>, HttpError> {
    let max = limits.max_body;
    let mut body = Vec::new();
    loop {
        let line =
            read_line(r)?.ok_or_else(|| HttpError::Io(io::ErrorKind::UnexpectedEof.into()))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad(400, "malformed chunk size"))?;
        if size == 0 {
            // Trailers until the blank line.
            loop {
                match read_line(r)? {
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => continue,
                    None => return Err(HttpError::Io(io::ErrorKind::UnexpectedEof.into())),
                }
            }
        }
        if body.len().saturating_add(size) > max {
            return Err(bad(
                limits.too_large_status,
                format!("body exceeds the limit of {max} bytes"),
            ));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad(400, "malformed chunk"));
        }
    }
}

/// The reason phrase for the statuses the collector answers with.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// One response to write.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body's media type (JSON unless said otherwise).
    pub content_type: &'static str,
    /// Further headers (the live page's security headers).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// Retry-After in seconds, if any.
    pub retry_after: Option<u64>,
    /// Whether to ask for (and perform) a close after this response.
    pub close: bool,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Self {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
            retry_after: None,
            close: false,
        }
    }

    /// A Segment-style error body `{"code": ..., "message": reason}` (what
    /// analytics-python's `request.py` reads into its `APIError`).
    pub fn error(status: u16, reason: &str) -> Self {
        let code = super::segment::error_code(status);
        Response::json(
            status,
            serde_json::json!({ "code": code, "message": reason }).to_string(),
        )
    }
}

/// Writes a response in one piece.
pub fn write_response<W: Write>(w: &mut W, resp: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason_phrase(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(secs) = resp.retry_after {
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    if resp.status == 401 {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    if resp.close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(resp.body.as_bytes());
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Request>, HttpError> {
        let mut r = io::BufReader::new(raw);
        let limits = Limits {
            max_body: 100,
            too_large_status: 413,
        };
        read_request(&mut r, limits, &mut io::sink())
    }

    #[test]
    fn content_length_body() {
        let req = parse(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/batch");
        assert_eq!(req.body, b"hello");
        assert_eq!(req.header("host"), Some("x"));
        assert!(req.keep_alive);
    }

    #[test]
    fn chunked_body() {
        let req = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.body, b"abcde");
        assert!(!req.keep_alive);
    }

    #[test]
    fn expect_continue_gets_an_interim_answer() {
        let raw = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
        let mut interim = Vec::new();
        let req = read_request(
            &mut io::BufReader::new(&raw[..]),
            Limits {
                max_body: 100,
                too_large_status: 413,
            },
            &mut interim,
        )
        .unwrap()
        .unwrap();
        assert_eq!(req.body, b"ok");
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn too_large_is_413_before_reading() {
        match parse(b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n") {
            Err(HttpError::Bad { status: 413, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ambiguous_body_length_is_400() {
        let status = |raw: &[u8]| match parse(raw) {
            Ok(Some(_)) => 200,
            Err(HttpError::Bad { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        let cl = |v: &str| format!("POST / HTTP/1.1\r\n{v}\r\n\r\nhello");
        assert_eq!(status(cl("Content-Length: 5").as_bytes()), 200);
        assert_eq!(
            status(cl("Content-Length: 5\r\nContent-Length: 5").as_bytes()),
            200
        );
        assert_eq!(status(cl("Content-Length: 5, 5").as_bytes()), 200);
        assert_eq!(
            status(cl("Content-Length: 5\r\nContent-Length: 4").as_bytes()),
            400
        );
        assert_eq!(status(cl("Content-Length: 5, 4").as_bytes()), 400);
        assert_eq!(status(cl("Content-Length: +5").as_bytes()), 400);
        assert_eq!(
            status(cl("Content-Length: 5\r\nTransfer-Encoding: chunked").as_bytes()),
            400
        );
        assert_eq!(status(cl("Transfer-Encoding: gzip").as_bytes()), 400);
        assert_eq!(
            status(cl("Transfer-Encoding: gzip, chunked").as_bytes()),
            501
        );
    }

    #[test]
    fn garbage_never_panics() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"GET",
            b"GET / HTTP/2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nno colon\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            let _ = parse(raw);
        }
        assert!(parse(b"").unwrap().is_none());
    }
}
