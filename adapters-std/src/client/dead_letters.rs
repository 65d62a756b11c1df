//! Undoing a server's bad day: choosing dead letters to requeue or purge.
//!
//! A dead letter is an event the server refused for good (a 400 on that
//! event alone). When the server was wrong (a bad deploy, a schema rule since
//! relaxed), [`Client::requeue_dead_letters`](super::Client::requeue_dead_letters)
//! puts the chosen ones back into the queue, byte for byte (same
//! `messageId`, so a server that did keep one deduplicates it), and
//! [`Client::purge_dead_letters`](super::Client::purge_dead_letters) deletes
//! those nobody wants.

use std::collections::HashSet;

use outbox_core::Seq;

use crate::sqlite::DeadLetter;

/// Which dead letters an operation applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterSelection {
    /// Every dead letter.
    All,
    /// Those whose queue sequence number (`DeadLetter::seq`, shown by
    /// `outbox dead-letter list`) is one of these.
    Seqs(Vec<Seq>),
}

/// The chosen letters, oldest first (linear in the dead letters, however
/// many seqs are asked for).
pub(crate) fn select<'a>(
    all: &'a [DeadLetter],
    which: &DeadLetterSelection,
) -> Vec<&'a DeadLetter> {
    let seqs: HashSet<Seq> = match which {
        DeadLetterSelection::All => HashSet::new(),
        DeadLetterSelection::Seqs(seqs) => seqs.iter().copied().collect(),
    };
    all.iter()
        .filter(|d| matches!(which, DeadLetterSelection::All) || seqs.contains(&d.seq))
        .collect()
}
