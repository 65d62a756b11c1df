//! Checks on where events go and with which key, made before anything is
//! opened or created: a refused endpoint or key is a usage error (exit 2).
//!
//! - Plain `http://` is allowed to loopback only, unless the user passed
//!   `--allow-plain-http`: events (possibly personal data) and the key
//!   would otherwise cross the network in clear text.
//! - A key holding control characters (a stray CR/LF from a file, say)
//!   cannot go into an HTTP header; it is refused at start, not retried as
//!   a failing upload until time runs out. The message never shows the key.

use crate::args::EndpointArgs;
use crate::error::{CliError, CliResult};

/// Refuses a plain-http endpoint that is not loopback (without the opt-in)
/// and a key that cannot be sent.
pub fn check(args: &EndpointArgs) -> CliResult {
    if let Some(key) = &args.key {
        if let Some(pos) = key.chars().position(char::is_control) {
            return Err(CliError::usage(format!(
                "the key (--key or OUTBOX_KEY) holds a control character at position {} \
                 (a line break?); it cannot be sent in an HTTP header",
                pos + 1
            )));
        }
    }
    if args.endpoint.starts_with("http://") && !is_loopback_url(&args.endpoint) {
        if !args.allow_plain_http {
            return Err(CliError::usage(format!(
                "refusing plain http to {}: events{} would travel unencrypted; \
                 use https://, or pass --allow-plain-http to accept that",
                args.endpoint,
                if args.key.is_some() {
                    " and the key"
                } else {
                    ""
                }
            )));
        }
        if args.key.is_some() {
            super::err_line(
                "outbox: warning: the key is sent in clear text over http:// (--allow-plain-http)",
            );
        }
    }
    Ok(())
}

/// Whether the URL's host is `localhost` or a loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.trim_start_matches('[').split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, key: Option<&str>, allow: bool) -> EndpointArgs {
        EndpointArgs {
            endpoint: url.into(),
            key: key.map(Into::into),
            allow_plain_http: allow,
        }
    }

    #[test]
    fn plain_http_only_to_loopback_or_with_the_opt_in() {
        assert!(check(&args("http://127.0.0.1:9", None, false)).is_ok());
        assert!(check(&args("http://localhost:9", None, false)).is_ok());
        assert!(check(&args("http://[::1]:9", None, false)).is_ok());
        assert!(check(&args("https://collector.invalid", None, false)).is_ok());
        let e = check(&args("http://collector.invalid:8080", None, false)).unwrap_err();
        assert_eq!(e.code, crate::exit::USAGE);
        assert!(check(&args("http://collector.invalid:8080", None, true)).is_ok());
        // A loopback-looking user name does not make the host loopback.
        assert!(check(&args("http://127.0.0.1@collector.invalid", None, false)).is_err());
    }

    #[test]
    fn control_characters_in_the_key_are_refused_without_showing_it() {
        for key in ["sec\r\nret", "sec\nret", "sec\u{0}ret", "sec\u{7f}"] {
            let e = check(&args("http://127.0.0.1:9", Some(key), false)).unwrap_err();
            assert_eq!(e.code, crate::exit::USAGE);
            assert!(!e.message.contains("sec"), "{}", e.message);
        }
        assert!(check(&args("http://127.0.0.1:9", Some("k-123"), false)).is_ok());
    }
}
