//! The HTTP transport: one POST per batch to `<endpoint>/v1/batch`.
//!
//! Kept thin on purpose (the rules live in the machine): build the
//! Segment-compatible body from the stored payloads without re-parsing them,
//! gzip it once (on by default, [`DEFAULT_GZIP_LEVEL`]; the machine's
//! 500 000-byte batch limit is counted on the body before compression, so a
//! server that decodes it never sees more), send it with bounded timeouts, read at most
//! 64 KiB of the answer, and report the status and Retry-After. ureq sets no
//! timeouts by itself, so [`HttpConfig`] always sets both. An answer that
//! was reached through a redirect is never taken as a delivery: ureq turns a
//! redirected POST into a GET, and a 200 to that GET says nothing about the
//! batch.
//!
//! ```
//! use std::time::Duration;
//! use outbox_std::http::{Auth, HttpConfig, HttpUploader};
//!
//! let config = HttpConfig::new("https://events.example.com", "write-key")
//!     .auth(Auth::Basic)
//!     .gzip(Some(6))
//!     .timeouts(Duration::from_secs(5), Duration::from_secs(20));
//! let uploader = HttpUploader::new(config).unwrap();
//! assert_eq!(uploader.url(), "https://events.example.com/v1/batch");
//! assert!(HttpUploader::new(HttpConfig::new("http://events.example.com", "k")).is_err());
//! ```

mod key;
mod resolve;
mod retry_after;

use std::io::Write;
use std::time::{Duration, SystemTime};

use ureq::http::Uri;
use ureq::ResponseExt;

use crate::upload::{BatchBody, Response, UploadFailed, Uploader};

pub use key::WriteKey;
pub use retry_after::parse_retry_after;

/// Most response-body bytes read (and then discarded).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// How the write key is sent. An empty key sends no `Authorization` header
/// at all, whichever is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic with the key as user name and an empty password (the
    /// default): what Segment's and RudderStack's servers read, and what
    /// their SDKs send (analytics-python `request.py` encodes `"{key}:"`,
    /// analytics-node's publisher `b64encode(`${writeKey}:`)`,
    /// analytics-go `req.SetBasicAuth(key, "")`, rudder-sdk-python
    /// `HTTPBasicAuth(write_key, '')`).
    #[default]
    Basic,
    /// `Authorization: Bearer <key>`, for OAuth access tokens
    /// (analytics-python sends Bearer only when its OAuth manager is on).
    Bearer,
}

/// Settings of the HTTP transport.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    endpoint: String,
    key: WriteKey,
    auth: Auth,
    gzip: Option<u32>,
    connect_timeout: Duration,
    timeout: Duration,
    max_redirects: u32,
    allow_plain_http: bool,
    user_agent: String,
}

/// The default gzip level of request bodies: 1. Measured on 1 500 bench
/// events (a 490 861-byte body): level 1 sends 12.2 % of the bytes at about
/// 320 MB/s, level 6 11.3 % at about 47 MB/s, level 9 the same 11.3 % at
/// about 32 MB/s; the fastest level keeps nearly all of the saving.
/// Segment's and RudderStack's servers accept `Content-Encoding: gzip`.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

/// The default connect timeout of a request.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default overall timeout of a request: below the machine's default
/// `request_timeout` (30 s), so the HTTP client's answer, or its own
/// timeout, always comes first. Were it as long, a 200 arriving just at the
/// end would find the batch already abandoned, and the batch would be sent
/// again (the server would drop the copies by messageId, but the work is
/// done twice).
pub const DEFAULT_OVERALL_TIMEOUT: Duration = Duration::from_secs(25);

impl HttpConfig {
    /// POST to `<endpoint>/v1/batch` with `key`; defaults: Basic auth (the
    /// key as user name; no header when the key is empty), gzip at
    /// [`DEFAULT_GZIP_LEVEL`],
    /// [`DEFAULT_CONNECT_TIMEOUT`] (10 s) and [`DEFAULT_OVERALL_TIMEOUT`]
    /// (25 s), at most 3 redirects.
    pub fn new(endpoint: impl Into<String>, key: impl Into<WriteKey>) -> Self {
        HttpConfig {
            endpoint: endpoint.into(),
            key: key.into(),
            auth: Auth::Basic,
            gzip: Some(DEFAULT_GZIP_LEVEL),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_OVERALL_TIMEOUT,
            max_redirects: 3,
            allow_plain_http: false,
            user_agent: concat!("outbox/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// How the key is sent (default: [`Auth::Basic`]).
    #[must_use]
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Gzip request bodies at this level (0–9, above 9 is 9), or send them
    /// uncompressed with `None` (default: [`DEFAULT_GZIP_LEVEL`]). Limits
    /// count the body before compression either way.
    #[must_use]
    pub fn gzip(mut self, level: Option<u32>) -> Self {
        self.gzip = level.map(|l| l.min(9));
        self
    }

    /// The overall timeout of one request ([`DEFAULT_OVERALL_TIMEOUT`]
    /// unless set by [`timeouts`](Self::timeouts)).
    pub fn overall_timeout(&self) -> Duration {
        self.timeout
    }

    /// Connect timeout and overall timeout per request (default: 10 s, 25 s). Keep the overall
    /// one below the machine's `request_timeout`.
    /// A huge value (up to `Duration::MAX`) means no deadline of that kind.
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, overall: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = overall;
        self
    }

    /// Redirects followed per request (default: 3). ureq re-sends a
    /// redirected POST only as a GET, so an answer reached through a
    /// redirect never counts as a delivery: it is retried like a failure.
    #[must_use]
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Allow `http://` to a host that is not loopback (default: false); the key then
    /// travels in clear text.
    #[must_use]
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The User-Agent header (default: `outbox/<version>`).
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
}

/// Why an [`HttpConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The endpoint is not an absolute http(s) URL.
    #[error("endpoint {0:?} is not an absolute http(s) URL")]
    BadEndpoint(String),
    /// Plain http to a host that is not loopback, without opting in.
    #[error(
        "endpoint {0:?} uses plain http to a non-loopback host; use https or allow_plain_http"
    )]
    PlainHttp(String),
    /// A timeout of zero.
    #[error("timeouts must be above zero")]
    ZeroTimeout,
}

/// The HTTP [`Uploader`].
pub struct HttpUploader {
    agent: ureq::Agent,
    url: String,
    /// `None` when there is no key: no `Authorization` header is sent.
    authorization: Option<String>,
    gzip: Option<u32>,
}

impl std::fmt::Debug for HttpUploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUploader")
            .field("url", &self.url)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl HttpUploader {
    /// Check `config` and build the agent.
    pub fn new(config: HttpConfig) -> Result<Self, HttpConfigError> {
        let base = config.endpoint.trim_end_matches('/');
        let uri: Uri = base
            .parse()
            .map_err(|_| HttpConfigError::BadEndpoint(base.to_string()))?;
        let host = uri
            .host()
            .ok_or_else(|| HttpConfigError::BadEndpoint(base.to_string()))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if config.allow_plain_http || is_loopback(host) => {}
            Some("http") => return Err(HttpConfigError::PlainHttp(base.to_string())),
            _ => return Err(HttpConfigError::BadEndpoint(base.to_string())),
        }
        if config.connect_timeout.is_zero() || config.timeout.is_zero() {
            return Err(HttpConfigError::ZeroTimeout);
        }
        let agent_config = ureq::Agent::config_builder()
            .timeout_connect(bounded(config.connect_timeout))
            .timeout_global(bounded(config.timeout))
            .max_redirects(config.max_redirects)
            .save_redirect_history(true)
            .http_status_as_error(false)
            .user_agent(config.user_agent.as_str())
            .build();
        // ureq's own connector, with a resolver that spawns no thread for an
        // IP literal or a recently resolved name.
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::default(),
            resolve::CachingResolver::default(),
        );
        let authorization = match config.auth {
            _ if config.key.is_empty() => None,
            Auth::Bearer => Some(config.key.bearer()),
            Auth::Basic => Some(config.key.basic()),
        };
        Ok(HttpUploader {
            agent,
            url: format!("{base}/v1/batch"),
            authorization,
            gzip: config.gzip,
        })
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A timeout for ureq: `None` (no deadline) when it is too large to add to
/// an `Instant`, so `Duration::MAX` means "no deadline" instead of a panic.
fn bounded(d: Duration) -> Option<Duration> {
    std::time::Instant::now().checked_add(d).map(|_| d)
}

/// Gzip `body` at `level`.
fn gzip(body: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::new(level),
    );
    enc.write_all(body)?;
    enc.finish()
}

impl Uploader for HttpUploader {
    fn upload(&mut self, batch: &BatchBody) -> Result<Response, UploadFailed> {
        let body = batch.segment_body(SystemTime::now());
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(authorization) = &self.authorization {
            req = req.header("Authorization", authorization);
        }
        let body = match self.gzip {
            Some(level) => {
                req = req.header("Content-Encoding", "gzip");
                gzip(&body, level).map_err(|e| UploadFailed(format!("gzip failed: {e}")))?
            }
            None => body,
        };
        let mut resp = req
            .send(&body[..])
            .map_err(|e| UploadFailed(e.to_string()))?;
        // ureq follows a redirected POST only as a GET (301/302/303; it
        // never resends a body on 307/308), so an answer after a redirect
        // is not the server taking this batch: never count it as delivered.
        if let Some(history) = resp.get_redirect_history() {
            if history.len() > 1 {
                let to = history.last().map(ToString::to_string).unwrap_or_default();
                return Err(UploadFailed(format!(
                    "{} redirected to {to}; a redirected POST is not a delivery, fix the endpoint",
                    self.url
                )));
            }
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Read (a bounded amount of) the body so the connection can be reused;
        // an oversized or broken body does not change the status.
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            let shown = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
            log::debug!("outbox: {} answered {status}: {shown}", self.url);
        }
        Ok(Response {
            status,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_times_out_before_the_machine_abandons_it() {
        let http = HttpConfig::new("https://example.com", "k");
        let machine = outbox_core::Config::default().request_timeout();
        assert!(
            http.overall_timeout() < machine,
            "{:?} against {machine:?}",
            http.overall_timeout()
        );
    }

    #[test]
    fn endpoint_rules() {
        let ok = |e: &str| HttpUploader::new(HttpConfig::new(e, "k")).map(|u| u.url().to_string());
        assert_eq!(
            ok("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9/v1/batch"
        );
        assert!(ok("http://localhost:1").is_ok());
        assert!(ok("http://[::1]:1").is_ok());
        assert_eq!(
            ok("http://example.com"),
            Err(HttpConfigError::PlainHttp("http://example.com".into()))
        );
        assert!(matches!(
            ok("ftp://x"),
            Err(HttpConfigError::BadEndpoint(_))
        ));
        assert!(matches!(
            ok("not a url"),
            Err(HttpConfigError::BadEndpoint(_))
        ));
        assert!(HttpUploader::new(
            HttpConfig::new("http://example.com", "k").allow_plain_http(true)
        )
        .is_ok());
    }

    #[test]
    fn key_is_not_in_debug_output() {
        let c = HttpConfig::new("https://x", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let u = HttpUploader::new(c).unwrap();
        assert!(!format!("{u:?}").contains("s3cr3t"));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let z = gzip(b"hello hello hello", 6).unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello hello hello");
    }
}

#[cfg(test)]
mod upload_tests {
    use super::*;

    #[test]
    fn a_failed_upload_never_shows_the_key() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = HttpConfig::new(format!("http://127.0.0.1:{port}"), "top-secret-key")
            .timeouts(Duration::from_secs(2), Duration::from_secs(5));
        let mut u = HttpUploader::new(config).unwrap();
        let body = BatchBody::from_payloads([&b"{}"[..]]);
        let err = u.upload(&body).unwrap_err();
        assert!(!err.to_string().contains("top-secret-key"), "{err}");
        assert!(!format!("{err:?}").contains("top-secret-key"));
    }
}
