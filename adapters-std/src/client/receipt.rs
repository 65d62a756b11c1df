//! What `track` hands back: the event's `messageId` and, once the worker has
//! queued it, its sequence number, so the app can match notifications
//! (which speak in sequence numbers) to the events it tracked.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use outbox_core::Seq;

use super::notify::Notification;

/// The receipt of one tracked event.
///
/// It derefs to the `messageId` (and compares equal to it), so code that
/// only wants the id can treat it as a `&str`. [`seq`](Self::seq) is set as
/// soon as the worker queued the event, which is always before any
/// notification about it is sent: matching a notification against a
/// receipt never races.
///
/// ```no_run
/// # fn demo(client: outbox_std::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use outbox_std::{Event, Notification};
/// let notes = client.notifications();
/// let receipt = client.track(Event::track("Paid").user_id("u-1"))?;
/// client.flush()?;
/// for note in notes {
///     if receipt.concerns(&note) {
///         println!("{} -> {note:?}", receipt.message_id());
///         if matches!(note, Notification::Delivered { .. }) { break; }
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Receipt {
    message_id: String,
    seq: Arc<OnceLock<Seq>>,
}

impl Receipt {
    pub(crate) fn new(message_id: String, seq: Arc<OnceLock<Seq>>) -> Self {
        Receipt { message_id, seq }
    }

    /// The event's `messageId`.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The event's sequence number in the queue; `None` until the worker
    /// queued it, and for good when it was never stored (a full queue under
    /// `Overflow::RejectNew`, a full disk: see the Client's stats).
    pub fn seq(&self) -> Option<Seq> {
        self.seq.get().copied()
    }

    /// Whether `note` is about this event: it was delivered, dropped or
    /// rejected.
    pub fn concerns(&self, note: &Notification) -> bool {
        self.seq().is_some_and(|seq| note.covers(seq))
    }

    /// The `messageId`, by value.
    pub fn into_message_id(self) -> String {
        self.message_id
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("message_id", &self.message_id)
            .field("seq", &self.seq())
            .finish()
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_id)
    }
}

impl Deref for Receipt {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message_id
    }
}

impl AsRef<str> for Receipt {
    fn as_ref(&self) -> &str {
        &self.message_id
    }
}

impl From<Receipt> for String {
    fn from(r: Receipt) -> String {
        r.message_id
    }
}

impl PartialEq<str> for Receipt {
    fn eq(&self, other: &str) -> bool {
        self.message_id == other
    }
}

impl PartialEq<&str> for Receipt {
    fn eq(&self, other: &&str) -> bool {
        self.message_id == *other
    }
}

impl PartialEq<String> for Receipt {
    fn eq(&self, other: &String) -> bool {
        &self.message_id == other
    }
}
