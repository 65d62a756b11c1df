//! The driver's observer: the notifications meant for the application,
//! flattened into an [`OutboxDeviceNote`] and handed to the C callback.

use core::ffi::c_void;

use outbox_core::{DropReason, HaltReason, Observer, Output, RejectReason};

use crate::abi::{
    OutboxDeviceNote, OutboxDropReason, OutboxHaltReason, OutboxNoteFn, OutboxNoteKind,
    OutboxRejectReason,
};

/// Calls the C `note` callback, if any, for each notification.
pub struct Notes {
    ctx: *mut c_void,
    note: OutboxNoteFn,
}

impl Notes {
    /// Notes for `note` (NULL: none), called with `ctx`.
    pub fn new(ctx: *mut c_void, note: OutboxNoteFn) -> Self {
        Notes { ctx, note }
    }
}

/// The C view of an output the application hears of; `None` for the
/// driver's own work (persist, commit, send, ...).
fn flatten(output: &Output) -> Option<OutboxDeviceNote> {
    let mut n = OutboxDeviceNote::default();
    match *output {
        Output::Delivered { first, last } => {
            n.kind = OutboxNoteKind::Delivered as i32;
            (n.first, n.last) = (first, last);
        }
        Output::Dropped {
            first,
            last,
            reason,
        } => {
            n.kind = OutboxNoteKind::Dropped as i32;
            (n.first, n.last) = (first, last);
            n.reason = match reason {
                DropReason::Overflow => OutboxDropReason::Overflow,
                DropReason::NotStored => OutboxDropReason::NotStored,
                DropReason::Damaged => OutboxDropReason::Damaged,
                _ => OutboxDropReason::Other,
            } as i32;
        }
        Output::Rejected {
            seq,
            status,
            reason,
        } => {
            n.kind = OutboxNoteKind::Rejected as i32;
            (n.first, n.last) = (seq, seq);
            n.status = u32::from(status);
            n.reason = match reason {
                RejectReason::Poison => OutboxRejectReason::Poison,
                RejectReason::TooLarge => OutboxRejectReason::TooLarge,
                RejectReason::Malformed => OutboxRejectReason::Malformed,
                #[allow(unreachable_patterns)]
                _ => OutboxRejectReason::Other,
            } as i32;
        }
        Output::Halted { status, reason } => {
            n.kind = OutboxNoteKind::Halted as i32;
            n.status = u32::from(status);
            n.reason = match reason {
                HaltReason::Status => OutboxHaltReason::Status,
                HaltReason::RejectionStorm => OutboxHaltReason::RejectionStorm,
                HaltReason::Storage => OutboxHaltReason::Storage,
                #[allow(unreachable_patterns)]
                _ => OutboxHaltReason::Other,
            } as i32;
        }
        Output::RetryScheduled { at, attempt, .. } => {
            n.kind = OutboxNoteKind::RetryScheduled as i32;
            n.attempt = attempt;
            n.retry_at_ms = at.as_millis();
        }
        _ => return None,
    }
    Some(n)
}

impl Observer for Notes {
    fn observe(&mut self, output: &Output) {
        if let (Some(call), Some(note)) = (self.note, flatten(output)) {
            // SAFETY: the callback's contract (outbox_embedded.h); the note
            // lives for the call.
            unsafe { call(self.ctx, &note) };
        }
    }
}
