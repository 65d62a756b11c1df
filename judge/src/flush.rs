//! Who asked for a flush: the rule that `Manual` never sends by itself and
//! `AppClose` only on background or terminate.

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
}

impl Requests {
    pub(crate) fn new(mode: Mode) -> Self {
        Requests {
            mode,
            explicit: false,
            by_mode: false,
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
    }

    /// Why a send now is not allowed, if it is not.
    pub(crate) fn refuse_send(&self) -> Option<&'static str> {
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
