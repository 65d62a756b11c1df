//! The write key, kept out of every log line and error message.
//!
//! `Debug` and `Display` print a fixed mask, so formatting a config, an
//! error or a panic message can never leak the key; only the transport asks
//! for the header value.

use std::fmt;

use base64::Engine;

/// A Segment-style write key. Its `Debug` and `Display` never show it.
///
/// ```
/// use outbox_std::http::WriteKey;
/// let key = WriteKey::new("sk_live_secret");
/// assert_eq!(format!("{key} {key:?}"), "*** WriteKey(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(String);

impl WriteKey {
    /// Wrap a key.
    pub fn new(key: impl Into<String>) -> Self {
        WriteKey(key.into())
    }

    /// Whether there is no key (then no `Authorization` header is sent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Authorization: Bearer <key>`.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// `Authorization: Basic base64(<key>:)`, the key as user name and an
    /// empty password. A key that already holds a `:` is a `user:password`
    /// pair (Jitsu's `keyId:secret` write keys) and is encoded as it is.
    pub(crate) fn basic(&self) -> String {
        let raw = if self.0.contains(':') {
            self.0.clone()
        } else {
            format!("{}:", self.0)
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteKey(***)")
    }
}

impl fmt::Display for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for WriteKey {
    fn from(s: &str) -> Self {
        WriteKey::new(s)
    }
}

impl From<String> for WriteKey {
    fn from(s: String) -> Self {
        WriteKey(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let k = WriteKey::new("abc");
        assert_eq!(k.bearer(), "Bearer abc");
        assert_eq!(k.basic(), "Basic YWJjOg==");
        // "id:secret" as user and password, not "id:secret:".
        assert_eq!(WriteKey::new("id:secret").basic(), "Basic aWQ6c2VjcmV0");
    }
}
