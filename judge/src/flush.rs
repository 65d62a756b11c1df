//! Who asked for a flush: the rule that `Manual` never sends by itself and
//! `AppClose` only on background or terminate, and that a critical event
//! asks for the queue up to it in every mode.

/// A flush mode, as the checker set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Immediate,
    Period,
    AppClose,
    Manual,
}

/// The flush requests standing, as the checker counts them. Only the
/// modes that do not flush by themselves are judged; in `Immediate` and
/// `Period` nearly everything requests a flush.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Requests {
    pub(crate) mode: Mode,
    /// An explicit flush request, standing until the queue is empty.
    explicit: bool,
    /// A request the mode made by itself (background or terminate in
    /// `AppClose`), standing until the queue is empty or the mode changes.
    by_mode: bool,
    /// The newest critical event tracked: its flush stands, in any mode,
    /// until the oldest pending event is past it.
    critical_tracked: Option<u64>,
    /// The newest critical event tracked or restored: a send up to it is
    /// allowed in any mode (a restored one asks again once the machine
    /// reads its size back).
    critical_any: Option<u64>,
}

impl Requests {
    pub(crate) fn new(mode: Mode) -> Self {
        Requests {
            mode,
            explicit: false,
            by_mode: false,
            critical_tracked: None,
            critical_any: None,
        }
    }

    pub(crate) fn flush(&mut self, pending: bool) {
        self.explicit |= pending;
    }

    /// A switch to `Manual` or `AppClose` cancels what the previous mode
    /// requested; an explicit request still stands.
    pub(crate) fn set_mode(&mut self, mode: Mode) {
        if matches!(mode, Mode::Manual | Mode::AppClose) {
            self.by_mode = false;
        }
        self.mode = mode;
    }

    /// Background or terminate.
    pub(crate) fn closing(&mut self, pending: bool) {
        if self.mode != Mode::Manual {
            self.by_mode |= pending;
        }
    }

    /// Whether an explicit flush request stands.
    pub(crate) fn explicit(&self) -> bool {
        self.explicit
    }

    pub(crate) fn emptied(&mut self) {
        self.explicit = false;
        self.by_mode = false;
        self.critical_tracked = None;
        self.critical_any = None;
    }

    /// A critical event `seq` was tracked (persisted).
    pub(crate) fn tracked_critical(&mut self, seq: u64) {
        self.critical_tracked = self.critical_tracked.max(Some(seq));
        self.restored_critical(seq);
    }

    /// A critical event `seq` was restored from the store.
    pub(crate) fn restored_critical(&mut self, seq: u64) {
        self.critical_any = self.critical_any.max(Some(seq));
    }

    /// The events `first..=last` were reported not stored: a critical one
    /// among them does not exist and asks for nothing. A request it made
    /// falls back to `newest`, the newest critical event still pending
    /// before it (`None`: no request stands).
    pub(crate) fn not_stored(
        &mut self,
        first: u64,
        last: u64,
        newest: impl Fn(u64) -> Option<u64>,
    ) {
        for c in [&mut self.critical_tracked, &mut self.critical_any] {
            if let Some(seq) = c.filter(|s| (first..=last).contains(s)) {
                *c = newest(seq);
            }
        }
    }

    /// Whether a tracked critical event's flush still stands, the oldest
    /// pending event being `front`.
    pub(crate) fn critical_owed(&self, front: Option<u64>) -> bool {
        front.is_some_and(|f| self.critical_tracked.is_some_and(|c| f <= c))
    }

    /// Whether a send from `first` serves a critical event's flush (which
    /// goes like an explicit one: in any mode, and in power save).
    pub(crate) fn critical_send(&self, first: u64) -> bool {
        self.critical_any.is_some_and(|c| first <= c)
    }

    /// Why a send from `first` now is not allowed, if it is not.
    pub(crate) fn refuse_send(&self, first: u64) -> Option<&'static str> {
        if self.critical_send(first) {
            // A critical event asked for the queue up to it.
            return None;
        }
        match self.mode {
            Mode::Manual if !self.explicit => {
                Some("Manual mode sent by itself (no explicit flush request stands)")
            }
            Mode::AppClose if !self.explicit && !self.by_mode => {
                Some("AppClose mode sent with no flush request, background or terminate standing")
            }
            _ => None,
        }
    }
}
