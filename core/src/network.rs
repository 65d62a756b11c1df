//! The network and power policy: whether an upload may start now.
//!
//! Why a module of its own: the platform reports three things the machine
//! cannot observe (whether the network is up, what kind it is, whether the
//! device saves power), and the user picks which networks uploads may use
//! (PostHog's `dataMode`). This file holds that rule alone, so the machine
//! asks one question ("may a batch go?") and the rule can be read, tested
//! and judged in one place.
//!
//! - Policy [`UploadPolicy::Any`] (the default): any network that is up.
//! - Policy [`UploadPolicy::Unmetered`]: a metered or unknown network counts
//!   as down for uploads, explicit flushes included: the user chose not to
//!   spend their data plan, and an explicit flush waits for an unmetered
//!   network like it waits for a network at all (PostHog behaves the same).
//! - Power save defers automatic flushes (the mode's: immediate, period,
//!   threshold, lifecycle, network restored), never an explicit one. The
//!   deferred request stands and goes when power save ends.
//!
//! Tracking and storing never wait for any of this.

use serde::{Deserialize, Serialize};

/// What kind of network is up, as the platform reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NetworkKind {
    /// Wi-Fi, Ethernet: data costs nothing per byte.
    Unmetered,
    /// Cellular or a hotspot: data is paid for per byte.
    Metered,
    /// The platform cannot tell (the machine starts here).
    #[default]
    Unknown,
}

/// Which networks uploads may use [`UploadPolicy::Any`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UploadPolicy {
    /// Any network that is up (the default).
    #[default]
    Any,
    /// Only a network reported [`NetworkKind::Unmetered`]; on a metered or
    /// unknown one nothing is uploaded, not even on an explicit flush.
    Unmetered,
}

impl UploadPolicy {
    /// Whether uploads may use a network of `kind` that is up.
    pub const fn allows(self, kind: NetworkKind) -> bool {
        matches!(
            (self, kind),
            (UploadPolicy::Any, _) | (UploadPolicy::Unmetered, NetworkKind::Unmetered)
        )
    }
}

/// What the platform last reported, and what it allows: one byte of
/// flags (the firmware's machine carries it too, and its flash budget
/// counts every byte of the machine's layout, see firmware/size.sh).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link(u8);

const DOWN: u8 = 1;
const METERED: u8 = 2;
const UNKNOWN: u8 = 4;
const POWER_SAVE: u8 = 8;
/// Up, but the policy forbids uploads on this kind.
const FORBIDDEN: u8 = 16;

impl Link {
    /// Up, of unknown kind, not saving power: until told otherwise.
    pub(crate) const fn new(policy: UploadPolicy) -> Link {
        match policy {
            UploadPolicy::Any => Link(UNKNOWN),
            UploadPolicy::Unmetered => Link(UNKNOWN | FORBIDDEN),
        }
    }

    /// Whether the network is up (whatever its kind).
    pub(crate) const fn up(self) -> bool {
        self.0 & DOWN == 0
    }

    /// Whether a batch may go now (the network and the policy).
    pub(crate) const fn usable(self) -> bool {
        self.0 & (DOWN | FORBIDDEN) == 0
    }

    /// Whether the platform reported power save.
    pub(crate) const fn power_save(self) -> bool {
        self.0 & POWER_SAVE != 0
    }

    /// Whether an automatic flush may start a batch now (power save
    /// defers it; an explicit flush never waits for this).
    pub(crate) const fn auto_allowed(self) -> bool {
        !self.power_save()
    }

    /// Power save began (`true`) or ended.
    pub(crate) fn set_power_save(&mut self, on: bool) {
        self.0 = (self.0 & !POWER_SAVE) | if on { POWER_SAVE } else { 0 };
    }

    /// The network changed; true when uploads became possible again
    /// (down or forbidden before, usable now).
    pub(crate) fn set_network(
        &mut self,
        up: bool,
        kind: NetworkKind,
        policy: UploadPolicy,
    ) -> bool {
        let was = self.usable();
        let mut bits = self.0 & POWER_SAVE;
        bits |= match kind {
            NetworkKind::Unmetered => 0,
            NetworkKind::Metered => METERED,
            NetworkKind::Unknown => UNKNOWN,
        };
        if !up {
            bits |= DOWN;
        }
        if !policy.allows(kind) {
            bits |= FORBIDDEN;
        }
        self.0 = bits;
        self.usable() && !was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmetered_policy_allows_only_unmetered_networks() {
        use NetworkKind::*;
        for kind in [Unmetered, Metered, Unknown] {
            assert!(UploadPolicy::Any.allows(kind));
        }
        assert!(UploadPolicy::Unmetered.allows(Unmetered));
        assert!(!UploadPolicy::Unmetered.allows(Metered));
        assert!(!UploadPolicy::Unmetered.allows(Unknown));
    }

    #[test]
    fn a_link_becomes_usable_once_per_change() {
        let policy = UploadPolicy::Unmetered;
        let mut l = Link::new(policy);
        assert!(l.up() && !l.usable(), "up, but of unknown kind");
        assert!(!l.set_network(true, NetworkKind::Metered, policy));
        assert!(l.set_network(true, NetworkKind::Unmetered, policy));
        assert!(!l.set_network(true, NetworkKind::Unmetered, policy));
        l.set_power_save(true);
        assert!(l.usable() && !l.auto_allowed());
        assert!(!l.set_network(false, NetworkKind::Unmetered, policy));
        assert!(
            !l.usable() && l.power_save(),
            "power save outlives a network change"
        );
        l.set_power_save(false);
        assert!(l.auto_allowed());
    }
}
