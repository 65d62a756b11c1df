//! Name resolution without a thread per request.
//!
//! ureq 3 resolves the host before every request, even one that reuses a
//! pooled connection, and when a timeout applies its default resolver does
//! the lookup on a fresh OS thread so it can give up on time: one thread
//! per batch, even for `127.0.0.1`. This resolver answers an IP literal
//! directly, and keeps a host name's addresses for [`NAME_TTL`], asking the
//! default resolver (with its timeout) only when they are older.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a host name's addresses are reused.
pub(crate) const NAME_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    default: DefaultResolver,
    /// The last host name resolved (`host:port`), its addresses and when.
    last: Mutex<Option<(String, ResolvedSocketAddrs, Instant)>>,
}

/// The port `uri` names, or its scheme's default.
fn port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let (Ok(ip), Some(port)) = (literal.parse::<IpAddr>(), port(uri)) {
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = format!("{host}:{}", port(uri).unwrap_or(0));
        if let Ok(last) = self.last.lock() {
            if let Some((k, addrs, at)) = last.as_ref() {
                if *k == key && at.elapsed() < NAME_TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = self.default.resolve(uri, config, timeout)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((key, addrs.clone(), Instant::now()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use ureq::unversioned::transport::NextTimeout;

    fn resolve(r: &CachingResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let timeout = NextTimeout {
            after: Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&uri, &Config::default(), timeout)
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn ip_literals_need_no_lookup_and_names_are_kept() {
        let r = CachingResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/v1/batch"),
            ["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/v1/batch"),
            ["[::1]:443".parse().unwrap()]
        );
        assert!(r.last.lock().unwrap().is_none(), "no lookup for literals");
        let first = resolve(&r, "http://localhost:9/x");
        assert!(!first.is_empty());
        assert!(first.iter().all(|a| a.port() == 9));
        assert_eq!(r.last.lock().unwrap().as_ref().unwrap().0, "localhost:9");
        assert_eq!(resolve(&r, "http://localhost:9/y"), first);
    }
}
