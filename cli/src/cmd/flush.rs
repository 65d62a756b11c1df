//! `outbox flush`: deliver what is queued.

use std::cell::Cell;
use std::time::Instant;

use outbox_std::{Client, DropReason, Notification, Notifications};

use super::deadline::Bound;
use super::deliver::{open_client_with, rejected_error, Endpoint, Watch};
use super::progress::Progress;
use super::{err_line, out_line};
use crate::args::{FlushArgs, FlushModeArg};
use crate::error::{CliError, CliResult};

/// Events dropped as damaged in the database between two stats.
pub fn damaged_since(base: &outbox_std::Stats, now: &outbox_std::Stats) -> u64 {
    now.dropped_damaged.saturating_sub(base.dropped_damaged)
}

/// What `send` and `flush` say about storage damage: a salvage of the
/// database (at once, and again at the end if one happened meanwhile)
/// and the events dropped as damaged, by number. A fault of the database
/// is never blamed on the network.
pub struct StorageWatch {
    notes: Notifications,
    told_salvage: Cell<bool>,
}

impl StorageWatch {
    /// Starts watching; tells a salvage made when the Client opened.
    pub fn start(client: &Client) -> Self {
        let watch = StorageWatch {
            notes: client.notifications(),
            told_salvage: Cell::new(false),
        };
        watch.tell_salvage(client);
        watch
    }

    fn tell_salvage(&self, client: &Client) {
        if self.told_salvage.get() {
            return;
        }
        if let Some(s) = client.stats().ok().and_then(|st| st.salvaged) {
            err_line(&format!("outbox: warning: {}", s.message()));
            self.told_salvage.set(true);
        }
    }

    /// At the end: a salvage made meanwhile.
    pub fn finish(&self, client: &Client) {
        self.tell_salvage(client);
    }

    /// The failure for `damaged` events dropped (exit 1), naming them.
    pub fn damaged_error(&self, damaged: u64, delivered: u64) -> CliError {
        let ranges: Vec<String> = self
            .notes
            .try_iter()
            .filter_map(|n| match n {
                Notification::Dropped {
                    first,
                    last,
                    reason: DropReason::Damaged,
                } if first == last => Some(format!("#{first}")),
                Notification::Dropped {
                    first,
                    last,
                    reason: DropReason::Damaged,
                } => Some(format!("#{first}..=#{last}")),
                _ => None,
            })
            .collect();
        let which = if ranges.is_empty() {
            String::new()
        } else {
            format!(" ({})", ranges.join(", "))
        };
        CliError::failure(format!(
            "{damaged} events were damaged in the database{which} and could not be sent: they \
             were dropped, the rest of the queue went on; {delivered} were delivered (see \
             `outbox status`)"
        ))
    }
}

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
    let client = open_client_with(db, &endpoint, FlushModeArg::Manual, None, |b| {
        let b = b.loss_reports(!args.no_loss_reports);
        match args.max_event_age {
            Some(age) => b.max_event_age(age),
            None => b,
        }
    })?;
    let storage = StorageWatch::start(&client);
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
        let damaged = damaged_since(&stats.core, s);
        let damaged_note = match damaged {
            0 => String::new(),
            n => format!(", {n} damaged in the database"),
        };
        out_line(&format!(
            "flushed {queued} queued events: {delivered} delivered, {rejected} rejected\
             {damaged_note}, 0 still queued"
        ));
        storage.finish(&client);
        if damaged > 0 {
            return Err(storage.damaged_error(damaged, delivered));
        }
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
