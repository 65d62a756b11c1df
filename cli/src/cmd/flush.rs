//! `outbox flush`: deliver what is queued.

use std::time::Instant;

use super::deliver::{open_client, Endpoint, Watch};
use super::out_line;
use super::progress::Progress;
use crate::args::{FlushArgs, FlushModeArg};
use crate::error::{CliError, CliResult};

/// Runs `outbox flush`: exit 0 once the queue is empty.
pub fn run(args: FlushArgs) -> CliResult {
    // A timeout too large for an Instant is no deadline.
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    let endpoint = Endpoint::new(&args.endpoint, args.gzip, args.bearer);
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
            deadline,
            notes: &notes,
            base: stats.core,
        };
        let queued = u64::from(stats.core.pending_events);
        let mut progress = Progress::new("flush", queued);
        let done = watch.deliver_all(&mut progress, queued)?;
        let s = &done.core;
        let rejected = s.rejected - stats.core.rejected;
        out_line(&format!(
            "flushed {queued} queued events: {} delivered, {rejected} rejected, 0 still queued",
            s.delivered - stats.core.delivered
        ));
        if rejected > 0 {
            return Err(CliError::failure(format!(
                "{rejected} events were rejected by the endpoint and moved to the dead-letter table \
                 (see `outbox dead-letter list`); everything else was delivered"
            )));
        }
        Ok(())
    })();
    // Delivered or given up: stop without starting another upload.
    let _ = client.close();
    result
}
