//! DESIGN.md's status table: what every HTTP-like status means.

/// What a status tells the machine to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 2xx: delete the batch, report it delivered.
    Delivered,
    /// 400, 422: a poison event inside; bisect, reject only it.
    Poison,
    /// 413: halve the batch; reject a single event that still gets it.
    TooLarge,
    /// 401, 403, 404, 405, 410, 501, 505 and any other 4xx: halt, keep
    /// everything, report the status.
    Halt,
    /// 408, 429, other 5xx (and anything the table does not name): retry
    /// with backoff.
    Transient,
}

/// The class of `status`, read off the table (not off the machine).
///
/// ```
/// use outbox_judge::{classify, Class};
/// assert_eq!(classify(422), Class::Poison);
/// assert_eq!(classify(410), Class::Halt);
/// assert_eq!(classify(408), Class::Transient);
/// ```
pub fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Delivered,
        400 | 422 => Class::Poison,
        413 => Class::TooLarge,
        408 | 429 => Class::Transient,
        401..=499 | 501 | 505 => Class::Halt,
        _ => Class::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify(s), Class::Delivered, "{s}");
        }
        for s in [401, 403, 404, 405, 410, 418, 451, 499, 501, 505] {
            assert_eq!(classify(s), Class::Halt, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(s), Class::Transient, "{s}");
        }
        assert_eq!(classify(413), Class::TooLarge);
        assert_eq!(classify(400), Class::Poison);
    }
}
