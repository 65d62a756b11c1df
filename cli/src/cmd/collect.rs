//! `outbox collect`: the reference collector on the command line.

use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::out_line;
use crate::args::CollectArgs;
use crate::collect::{Collector, Config, Logger, RandomFaults};
use crate::error::{CliError, CliResult};

/// Serves until SIGINT or SIGTERM, then prints the summary and exits 0.
pub fn run(args: CollectArgs) -> CliResult {
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .map_err(|e| CliError::failure(format!("cannot install the signal handler: {e}")))?;

    let seed = args.seed.unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        now ^ u64::from(std::process::id()).rotate_left(32)
    });
    let faults = RandomFaults::new(
        args.fail_rate,
        args.fail_status,
        args.retry_after,
        args.drop_response_rate,
        seed,
    );
    let config = Config {
        key: args.key.clone(),
        max_batch_bytes: args.max_batch_bytes,
        reject_field: args.reject_field.clone(),
        out: args.out.clone(),
        request_timeout: Some(args.request_timeout),
        max_connections: Some(args.max_connections),
        live_events: args.ui.then_some(args.ui_events),
    };
    let log: Logger = Box::new(|batch| out_line(&batch.to_string()));
    let collector = Collector::start(&args.listen, config, Box::new(faults), Some(log))
        .map_err(|e| CliError::failure(e.to_string()))?;
    out_line(&format!("listening on {}", collector.url()));
    if let Some(page) = collector.page_url() {
        out_line(&format!("live events page on {page}"));
    }
    if let Some(out) = &args.out {
        out_line(&format!(
            "appending to {}, which already holds {} message ids",
            out.display(),
            collector.summary().known_at_start
        ));
    }
    // Wait for SIGINT/SIGTERM (or, should the handler vanish, for ever).
    let _ = stop_rx.recv();
    let summary = collector.shutdown();
    out_line(&summary.to_string());
    Ok(())
}
