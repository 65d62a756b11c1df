//! The rule the kill -9 campaign (`tests/tests/std_crash.rs`) judges the
//! collector's log by: first deliveries in tracking order, and a duplicate
//! only where a restart explains it.
//!
//! The campaign's children run one after another: run `r + 1` is spawned
//! only once run `r` was killed and reaped. A child posts one batch at a
//! time and waits for its answer before the next, and the collector logs a
//! request before it answers it. So the order the requests were *sent* in
//! is: every request of run 0, then every request of run 1, and so on, and
//! within a run the collector's order.
//!
//! The collector's log is not that order across runs. Its HTTP server
//! (tiny_http) reads each connection's request head on a pool thread and
//! queues the request only then; a batch a child wrote into its socket just
//! before the kill waits in the kernel until that thread runs. On a loaded
//! machine the next run can start, restore and post first, and the log then
//! shows the dead run's last batch after the next run's first (seen in the
//! campaign: `r13-10` logged as delivered by run 14 in request 170 and
//! "re-sent" by run 13, dead by then, in request 171). Judging the log in
//! the collector's order takes that for a run re-sending what it had been
//! acknowledged, so the rule works on the send order: the log stably
//! sorted by run.
//!
//! In send order the rule is strict: an event may reach the collector in
//! an acknowledged (2xx) batch again only when its latest acknowledged
//! delivery was the last acknowledged batch before the sending run started
//! (an acknowledgement the killed run had not applied yet), and only once
//! per run. A run re-sending what it was acknowledged itself, or what an
//! older batch delivered, breaks it.

use std::collections::HashMap;
use std::fmt;

/// One request the collector answered, as the rule needs it.
#[derive(Clone, Copy, Debug)]
pub struct Logged<'a> {
    /// The run (child incarnation) that sent it.
    pub run: u64,
    /// The status the collector answered.
    pub status: u16,
    /// The batch's `messageId`s, in order (empty when the body was cut
    /// short by the kill and did not parse).
    pub ids: &'a [String],
}

/// What the rule counted in a log that keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events delivered at least once.
    pub delivered: usize,
    /// Deliveries of an event already delivered (all explained by a restart).
    pub duplicates: usize,
}

/// How a log breaks the rule. Request numbers are positions in the
/// collector's log, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A `messageId` that is not `r<run>-<i>`.
    UnexpectedId(String),
    /// A first delivery older than one before it.
    OutOfOrder {
        /// The event.
        id: String,
        /// The request that delivered it.
        request: usize,
        /// The newest event first delivered before it, as (run, i).
        after: (u64, u64),
    },
    /// A delivery again that no restart explains.
    Duplicate {
        /// The event.
        id: String,
        /// The run that sent it again.
        run: u64,
        /// The request that delivered it again.
        request: usize,
        /// The request (and its run) that delivered it last before.
        latest: (usize, u64),
        /// The last acknowledged batch before `run` started, if any.
        before: Option<usize>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::UnexpectedId(id) => write!(f, "unexpected messageId {id:?}"),
            Violation::OutOfOrder { id, request, after } => write!(
                f,
                "{id} delivered out of order in request {request} (after r{}-{})",
                after.0, after.1
            ),
            Violation::Duplicate {
                id,
                run,
                request,
                latest: (latest, latest_run),
                before,
            } => write!(
                f,
                "{id} re-sent by run {run} (request {request}) but it was delivered last in \
                 request {latest} (by run {latest_run}), not in the last acknowledged batch \
                 before run {run} ({before:?})"
            ),
        }
    }
}

/// `r<run>-<i>` as (run, i).
pub fn key(id: &str) -> Option<(u64, u64)> {
    let (run, i) = id.strip_prefix('r')?.split_once('-')?;
    Some((run.parse().ok()?, i.parse().ok()?))
}

/// Judge the collector's log (in the collector's order) by the rule.
pub fn check(log: &[Logged<'_>]) -> Result<Tally, Violation> {
    // Send order: by run, the collector's order within a run.
    let mut order: Vec<usize> = (0..log.len()).collect();
    order.sort_by_key(|&n| log[n].run);

    let mut tally = Tally::default();
    // Each event's latest acknowledged delivery: (request, run).
    let mut latest: HashMap<&str, (usize, u64)> = HashMap::new();
    let mut last_first: Option<(u64, u64)> = None;
    // The acknowledged batches so far, as (run, request).
    let mut acks: Vec<(u64, usize)> = Vec::new();
    for n in order {
        let r = &log[n];
        // A child killed while sending its body leaves a request whose
        // body does not parse: the collector answered it, but it
        // acknowledged no event, so it is no run's last acknowledged batch.
        if !(200..300).contains(&r.status) || r.ids.is_empty() {
            continue;
        }
        // The last acknowledged batch of an earlier run.
        let before = acks
            .iter()
            .rev()
            .find(|&&(run, _)| run < r.run)
            .map(|&(_, b)| b);
        for id in r.ids {
            match latest.get(id.as_str()) {
                Some(&seen) => {
                    tally.duplicates += 1;
                    if before != Some(seen.0) {
                        return Err(Violation::Duplicate {
                            id: id.clone(),
                            run: r.run,
                            request: n,
                            latest: seen,
                            before,
                        });
                    }
                }
                None => {
                    let k = key(id).ok_or_else(|| Violation::UnexpectedId(id.clone()))?;
                    if let Some(after) = last_first.filter(|&p| p >= k) {
                        return Err(Violation::OutOfOrder {
                            id: id.clone(),
                            request: n,
                            after,
                        });
                    }
                    last_first = Some(k);
                    tally.delivered += 1;
                }
            }
            latest.insert(id, (n, r.run));
        }
        acks.push((r.run, n));
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// (run, status, ids) in the collector's order.
    fn judge(log: &[(u64, u16, Vec<String>)]) -> Result<Tally, Violation> {
        let logged: Vec<Logged<'_>> = log
            .iter()
            .map(|(run, status, ids)| Logged {
                run: *run,
                status: *status,
                ids,
            })
            .collect();
        check(&logged)
    }

    #[test]
    fn a_restart_may_resend_the_batch_whose_answer_the_kill_cut_off() {
        let log = [
            (13, 200, ids(&["r13-0", "r13-1"])),
            (13, 200, ids(&["r13-2"])),
            (14, 200, ids(&["r13-2", "r14-0"])),
        ];
        assert_eq!(
            judge(&log),
            Ok(Tally {
                delivered: 4,
                duplicates: 1
            })
        );
    }

    /// The campaign's failure: run 13's last batch, written just before
    /// the kill, logged after run 14's first, which re-sent it.
    #[test]
    fn a_dead_runs_last_batch_logged_after_the_next_runs_first_is_judged_in_send_order() {
        let log = [
            (13, 200, ids(&["r13-0", "r13-9"])),
            (14, 200, ids(&["r13-10", "r13-11", "r14-0"])),
            (13, 200, ids(&["r13-10", "r13-11"])),
            (14, 200, ids(&["r14-1"])),
        ];
        assert_eq!(
            judge(&log),
            Ok(Tally {
                delivered: 6,
                duplicates: 2
            })
        );
    }

    #[test]
    fn a_run_resending_what_it_was_acknowledged_breaks_the_rule() {
        let log = [
            (39, 200, ids(&["r36-20"])),
            (40, 200, ids(&["r36-21", "r40-0"])),
            (40, 500, ids(&["r40-1"])),
            (40, 200, ids(&["r36-21", "r40-1"])),
        ];
        assert_eq!(
            judge(&log),
            Err(Violation::Duplicate {
                id: "r36-21".into(),
                run: 40,
                request: 3,
                latest: (1, 40),
                before: Some(0),
            })
        );
    }

    #[test]
    fn a_duplicate_from_an_older_acknowledged_batch_breaks_the_rule() {
        let log = [
            (1, 200, ids(&["r1-0"])),
            (1, 200, ids(&["r1-1"])),
            (2, 200, ids(&["r1-0", "r2-0"])),
        ];
        assert!(matches!(
            judge(&log),
            Err(Violation::Duplicate {
                request: 2,
                latest: (0, 1),
                ..
            })
        ));
    }

    #[test]
    fn the_unapplied_batch_may_come_again_only_once_per_run() {
        let log = [
            (1, 200, ids(&["r1-0"])),
            (2, 200, ids(&["r1-0"])),
            (2, 200, ids(&["r1-0", "r2-0"])),
        ];
        assert!(matches!(
            judge(&log),
            Err(Violation::Duplicate {
                request: 2,
                latest: (1, 2),
                ..
            })
        ));
        // The next run may re-send it again: run 2's last batch held it.
        let log = [
            (1, 200, ids(&["r1-0"])),
            (2, 200, ids(&["r1-0"])),
            (3, 200, ids(&["r1-0", "r3-0"])),
        ];
        assert!(judge(&log).is_ok());
    }

    #[test]
    fn unacknowledged_and_unparsed_requests_deliver_nothing() {
        let log = [
            (1, 200, ids(&["r1-0"])),
            (1, 500, ids(&["r1-1"])),
            (2, 200, ids(&[])),
            (2, 200, ids(&["r1-0", "r1-1"])),
        ];
        assert_eq!(
            judge(&log),
            Ok(Tally {
                delivered: 2,
                duplicates: 1
            })
        );
        // A 500 is no acknowledgement: re-sending after it is no duplicate,
        // but neither is it the batch a restart may repeat.
        let log = [
            (1, 200, ids(&["r1-0"])),
            (1, 200, ids(&["r1-1"])),
            (1, 500, ids(&["r1-2"])),
            (2, 200, ids(&["r1-0"])),
        ];
        assert!(judge(&log).is_err());
    }

    #[test]
    fn first_deliveries_out_of_tracking_order_break_the_rule() {
        let log = [(1, 200, ids(&["r1-0", "r1-2"])), (1, 200, ids(&["r1-1"]))];
        assert_eq!(
            judge(&log),
            Err(Violation::OutOfOrder {
                id: "r1-1".into(),
                request: 1,
                after: (1, 2),
            })
        );
        assert_eq!(
            judge(&[(1, 200, ids(&["x"]))]),
            Err(Violation::UnexpectedId("x".into()))
        );
    }
}
