//! `outbox gateway --tcp`: device connections served side by side.
//!
//! Each connection has its own thread and frame reader; posts still go
//! one at a time through the [`Gateway`]'s poster. So a client that
//! connects and says nothing, or a device whose connection went half-open
//! when it lost power, never keeps the next device waiting:
//!
//! - TCP keepalive (probes after 30 s idle, every 10 s, 3 lost) ends a
//!   connection whose peer is gone;
//! - a frame that stops in the middle for [`FRAME_STALL`] ends its
//!   connection (between frames a device may stay quiet as long as it
//!   likes);
//! - at most [`MAX_CONNECTIONS`] are kept: a new one replaces the one
//!   quiet the longest, so a reconnecting device always gets in.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Gateway, Link, Report};

/// Connections kept at once.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a frame may stop in the middle before its connection is
/// closed.
pub const FRAME_STALL: Duration = Duration::from_secs(30);

/// One connection, as the acceptor sees it.
struct Conn {
    id: u64,
    peer: SocketAddr,
    /// A handle to shut it down with.
    stream: TcpStream,
    /// When it last sent a byte (or connected).
    active: Arc<Mutex<Instant>>,
}

type Conns = Arc<Mutex<Vec<Conn>>>;

/// Accept connections on `listener` for ever, serving each on its own
/// thread; `log` gets every line to report.
pub fn serve(gateway: &Gateway, listener: &TcpListener, log: Arc<dyn Fn(&str) + Send + Sync>) {
    let conns: Conns = Arc::new(Mutex::new(Vec::new()));
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) => {
                log(&format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let handle = match stream.try_clone() {
            Ok(handle) => handle,
            Err(e) => {
                log(&format!("{peer}: cannot use the connection: {e}"));
                continue;
            }
        };
        let active = Arc::new(Mutex::new(Instant::now()));
        {
            let mut list = conns.lock().unwrap_or_else(PoisonError::into_inner);
            if list.len() >= MAX_CONNECTIONS {
                let quietest = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| *c.active.lock().unwrap_or_else(PoisonError::into_inner))
                    .map(|(i, _)| i);
                if let Some(i) = quietest {
                    let old = list.swap_remove(i);
                    let _ = old.stream.shutdown(Shutdown::Both);
                    log(&format!(
                        "{} closed: quiet the longest of {MAX_CONNECTIONS} connections, \
                         and {peer} connected",
                        old.peer
                    ));
                }
            }
            list.push(Conn {
                id,
                peer,
                stream: handle,
                active: Arc::clone(&active),
            });
        }
        log(&format!("device connected from {peer}"));
        let gateway = gateway.clone();
        let conns = Arc::clone(&conns);
        let log = Arc::clone(&log);
        thread::spawn(move || {
            let ended = connection(&gateway, stream, &active, &*log);
            match ended {
                Ok(()) => log(&format!("{peer} disconnected")),
                Err(e) => log(&format!("{peer} closed: {e}")),
            }
            let mut list = conns.lock().unwrap_or_else(PoisonError::into_inner);
            list.retain(|c| c.id != id);
        });
    }
}

/// Serve one connection until it ends or is given up.
fn connection(
    gateway: &Gateway,
    stream: TcpStream,
    active: &Mutex<Instant>,
    log: &dyn Fn(&str),
) -> io::Result<()> {
    keepalive(&stream);
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(FRAME_STALL))?;
    let mut input = stream.try_clone()?;
    let mut link = Link::new(gateway, stream);
    let mut report = |r: &Report| log(&r.to_string());
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The read timeout (a lost keepalive is TimedOut, and ends it).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !link.mid_frame() => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let stalled = FRAME_STALL.as_secs();
                return Err(io::Error::other(format!(
                    "a frame stopped in the middle for {stalled} s"
                )));
            }
            Err(e) => return Err(e),
        };
        *active.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        link.absorb(&chunk[..n], &mut report)?;
    }
}

/// Probe an idle connection so a peer that vanished (power lost, cable
/// pulled) is noticed; where the options are missing, the frame stall and
/// the connection limit still free its place.
fn keepalive(stream: &TcpStream) {
    #[cfg(unix)]
    {
        use rustix::net::sockopt;
        let _ = sockopt::set_socket_keepalive(stream, true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = sockopt::set_tcp_keepidle(stream, Duration::from_secs(30));
            let _ = sockopt::set_tcp_keepintvl(stream, Duration::from_secs(10));
            let _ = sockopt::set_tcp_keepcnt(stream, 3);
        }
    }
    #[cfg(not(unix))]
    let _ = stream;
}
