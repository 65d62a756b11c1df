//! Making outside text safe to print.
//!
//! Two things reach a terminal or a log from outside: URLs typed by the user
//! (which may carry `user:password@`) and bytes sent by a client to
//! `outbox collect` (which may carry terminal escape sequences). Every
//! message line passes through [`strip_userinfo`]; every collector log line
//! through [`escape_controls`].

use std::borrow::Cow;

/// Removes the `user:password@` part of every `scheme://` URL in `text`.
///
/// ```
/// use outbox_cli::printable::strip_userinfo;
/// assert_eq!(
///     strip_userinfo("cannot reach http://me:s3cret@host:80/x (refused)"),
///     "cannot reach http://host:80/x (refused)"
/// );
/// assert_eq!(strip_userinfo("no url here"), "no url here");
/// ```
pub fn strip_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace; its
        // userinfo is everything up to the last '@' inside it.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Writes control characters (C0, DEL, C1) as `\u{..}` escapes, so text from
/// a client cannot move the cursor, recolour or retitle a terminal.
///
/// ```
/// use outbox_cli::printable::escape_controls;
/// assert_eq!(escape_controls("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\u{a}");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_goes_everywhere_it_appears() {
        assert_eq!(
            strip_userinfo("a https://u:p@h/x and http://v@[::1]:9 end"),
            "a https://h/x and http://[::1]:9 end"
        );
        assert_eq!(strip_userinfo("\"http://u:p@h\""), "\"http://h\"");
        assert_eq!(strip_userinfo("http://u:p@"), "http://");
        assert_eq!(strip_userinfo("x://"), "x://");
        // A password holding '@' is stripped up to the last one.
        assert_eq!(strip_userinfo("http://u:p@ss@h:1"), "http://h:1");
    }

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape_controls("\u{7}\u{7f}\u{9b}"), "\\u{7}\\u{7f}\\u{9b}");
    }
}
