//! `outbox gateway`: open the device link, then bridge it with
//! [`crate::gateway::Gateway`].
//!
//! `--tcp ADDR` listens (QEMU's `-serial tcp:ADDR` is the client) and
//! serves each connection on its own thread ([`crate::gateway::tcp`]), so
//! a silent or half-open connection never blocks the next device.
//! `--stdio` ends at the end of stdin; `--serial` ends when the port fails.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::path::Path;

use outbox_std::http::HttpUploader;

use super::deliver::{http_config, Endpoint};
use super::{err_line, out_line};
use crate::args::GatewayArgs;
use crate::error::{CliError, CliResult};
use crate::gateway::{Gateway, Report};

/// Serves until the link ends (stdio), fails (serial), or for ever (tcp).
pub fn run(args: GatewayArgs) -> CliResult {
    let endpoint = Endpoint::new(&args.endpoint, &args.wire)?;
    let uploader = HttpUploader::new(http_config(&endpoint))
        .map_err(|e| CliError::usage(format!("bad --endpoint: {e}")))?;
    let gateway = Gateway::new(uploader, args.max_frame_bytes).answer_within(args.answer_within);
    let mut log = |r: &Report| err_line(&format!("outbox gateway: {r}"));
    let link = &args.link;
    if link.stdio {
        return gateway
            .serve(io::stdin().lock(), io::stdout().lock(), &mut log)
            .map_err(|e| CliError::failure(format!("stdio link failed: {e}")));
    }
    if let Some(path) = &link.serial {
        let port = open_serial(path, args.baud)
            .map_err(|e| CliError::failure(format!("cannot open {}: {e}", path.display())))?;
        let reader = port
            .try_clone()
            .map_err(|e| CliError::failure(format!("cannot use {}: {e}", path.display())))?;
        gateway
            .serve(reader, port, &mut log)
            .map_err(|e| CliError::failure(format!("{} failed: {e}", path.display())))?;
        return Err(CliError::failure(format!("{} closed", path.display())));
    }
    let addr = link.tcp.as_deref().unwrap_or_default();
    let listener = TcpListener::bind(addr)
        .map_err(|e| CliError::failure(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::failure(format!("cannot listen on {addr}: {e}")))?;
    out_line(&format!("listening on {local}"));
    let log = |line: &str| err_line(&format!("outbox gateway: {line}"));
    crate::gateway::tcp::serve(&gateway, &listener, std::sync::Arc::new(log));
    Ok(())
}

/// Opens a serial port for reading and writing; a tty is put in raw mode
/// at `baud` so no byte is translated or echoed.
fn open_serial(path: &Path, baud: u32) -> io::Result<File> {
    let port = OpenOptions::new().read(true).write(true).open(path)?;
    #[cfg(unix)]
    if rustix::termios::isatty(&port) {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let mut mode = tcgetattr(&port)?;
        mode.make_raw();
        mode.set_speed(baud)?;
        tcsetattr(&port, OptionalActions::Now, &mode)?;
    }
    #[cfg(not(unix))]
    let _ = baud;
    Ok(port)
}
