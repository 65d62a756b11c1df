//! `outbox flush`: deliver what is queued.

use std::time::Instant;

use super::deadline::Bound;
use super::deliver::{open_client, rejected_error, Endpoint, Watch};
use super::out_line;
use super::progress::Progress;
use crate::args::{FlushArgs, FlushModeArg};
use crate::error::{CliError, CliResult};

/// Runs `outbox flush`: exit 0 once the queue is empty.
pub fn run(args: FlushArgs) -> CliResult {
    let bound = Bound::new(Instant::now(), args.timeout);
    let endpoint = Endpoint::new(&args.endpoint, &args.wire)?;
    let db = args.db.db.as_path();
    if !db.exists() {
        return Err(CliError::failure(format!(
            "{}: no such database (nothing was ever queued there)",
            db.display()
        )));
    }
    let client = open_client(db, &endpoint, FlushModeArg::Manual, None)?;
    let result = (|| {
        let notes = client.notifications();
        let stats = client
            .stats()
            .map_err(|e| CliError::failure(format!("the client stopped: {e}")))?;
        let watch = Watch {
            client: &client,
            endpoint: &endpoint,
            db,
            bound: &bound,
            notes: &notes,
            base: stats.core,
            seen: Default::default(),
        };
        let queued = u64::from(stats.core.pending_events);
        let mut progress = Progress::new("flush", queued);
        let done = watch.deliver_all(&mut progress, queued)?;
        let s = &done.core;
        let rejected = s.rejected - stats.core.rejected;
        let delivered = s.delivered - stats.core.delivered;
        out_line(&format!(
            "flushed {queued} queued events: {delivered} delivered, {rejected} rejected, 0 still queued"
        ));
        if rejected > 0 {
            return Err(rejected_error(
                rejected,
                watch.seen.malformed.get(),
                delivered,
            ));
        }
        Ok(())
    })();
    // Delivered or given up: stop without starting another upload.
    let _ = client.close();
    result
}
