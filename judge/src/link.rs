//! The network and power rule: no upload starts while the network is down
//! or the upload policy forbids its kind, and an automatic flush starts no
//! upload in power save (an explicit flush request still goes, and so does
//! a critical event's flush).
//!
//! Kept apart from the flush modes ([`crate::flush`]): those say who asked
//! for a flush; this says whether the link lets any request go now. The
//! judge works it out from what the checker told the machine, never from
//! the machine's own view.

/// What kind of network the checker reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    Unmetered,
    Metered,
    /// What a machine assumes until told (and what a network input with
    /// no kind means).
    #[default]
    Unknown,
}

/// The link as the checker reported it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    pub(crate) up: bool,
    pub(crate) kind: Kind,
    pub(crate) power_save: bool,
    /// The policy: uploads only on an unmetered network.
    unmetered_only: bool,
}

impl Link {
    /// A fresh machine's link: up (unless the checker says), kind unknown,
    /// not saving power.
    pub(crate) fn new(up: bool, unmetered_only: bool) -> Self {
        Link {
            up,
            kind: Kind::Unknown,
            power_save: false,
            unmetered_only,
        }
    }

    /// Whether the policy lets a batch go on this network now.
    pub(crate) fn usable(&self) -> bool {
        self.up && (!self.unmetered_only || self.kind == Kind::Unmetered)
    }

    /// Why a send now is not allowed, if it is not; `explicit` says whether
    /// an explicit flush request stands.
    pub(crate) fn refuse_send(&self, explicit: bool) -> Option<(&'static str, String)> {
        if !self.up {
            return Some(("network", "a send while the network is down".into()));
        }
        if !self.usable() {
            return Some((
                "network",
                format!(
                    "a send on a {:?} network, but uploads are for unmetered networks only",
                    self.kind
                ),
            ));
        }
        if self.power_save && !explicit {
            return Some((
                "power-save",
                "an automatic flush sent in power save (no explicit flush request stands)".into(),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_flush_goes_in_power_save() {
        let mut l = Link::new(true, false);
        assert!(l.refuse_send(false).is_none());
        l.power_save = true;
        assert_eq!(l.refuse_send(false).unwrap().0, "power-save");
        assert!(l.refuse_send(true).is_none());
    }

    #[test]
    fn unmetered_only_refuses_metered_and_unknown_networks_even_when_explicit() {
        let mut l = Link::new(true, true);
        assert_eq!(l.refuse_send(true).unwrap().0, "network", "unknown kind");
        l.kind = Kind::Metered;
        assert_eq!(l.refuse_send(true).unwrap().0, "network");
        l.kind = Kind::Unmetered;
        assert!(l.refuse_send(true).is_none());
        l.up = false;
        assert_eq!(l.refuse_send(true).unwrap().0, "network");
    }
}
