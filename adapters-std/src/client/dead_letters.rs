//! Undoing a server's bad day: choosing dead letters to requeue or purge.
//!
//! A dead letter is an event the server refused for good (a 400 on that
//! event alone). When the server was wrong (a bad deploy, a schema rule since
//! relaxed), [`Client::requeue_dead_letters`](super::Client::requeue_dead_letters)
//! puts the chosen ones back into the queue, byte for byte (same
//! `messageId`, so a server that did keep one deduplicates it), and
//! [`Client::purge_dead_letters`](super::Client::purge_dead_letters) deletes
//! those nobody wants.

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

/// The row ids of the chosen letters, oldest first.
pub(crate) fn select(all: &[DeadLetter], which: &DeadLetterSelection) -> Vec<i64> {
    all.iter()
        .filter(|d| match which {
            DeadLetterSelection::All => true,
            DeadLetterSelection::Seqs(seqs) => seqs.contains(&d.seq),
        })
        .map(|d| d.id)
        .collect()
}
