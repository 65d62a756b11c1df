//! Retry-After, as delta-seconds or as an HTTP date (RFC 9110 §10.2.3).
//!
//! The machine wants milliseconds from now; anything unparseable is ignored
//! (the machine's own backoff applies), and a date in the past means "now".

use std::time::{Duration, SystemTime};

/// Parse a Retry-After value received at `now`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use outbox_std::http::parse_retry_after;
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        // Cap absurd values at a day so a typo cannot stall the queue for years.
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(86_400)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_dates_and_garbage() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("99999999999", now),
            Some(Duration::from_secs(86_400))
        );
    }
}
