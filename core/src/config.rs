//! Configuration, checked when it is built.
//!
//! Every limit the machine enforces lives here with the default from
//! DESIGN.md. [`ConfigBuilder::build`] rejects nonsense (a zero batch size, a
//! batch byte limit that cannot hold one maximal event, a zero period, ...)
//! with a [`ConfigError`] instead of letting it surface as a stuck queue or a
//! panic later.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::duration_millis;

/// When the machine starts an upload by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlushMode {
    /// Every tracked event requests a flush (the default). Events tracked
    /// while a batch is in flight go in the next batch.
    #[default]
    Immediate,
    /// Flush every period (in milliseconds), when the pending count reaches
    /// the flush threshold, on background and terminate, and on foreground
    /// when anything is pending.
    Period {
        /// The period in milliseconds; never zero.
        millis: u64,
    },
    /// Flush on background and terminate only.
    AppClose,
    /// Never flush by itself; only an explicit flush request uploads.
    Manual,
}

impl FlushMode {
    /// `Period` with the given period.
    pub fn period(d: Duration) -> Self {
        FlushMode::Period {
            millis: duration_millis(d),
        }
    }

    /// The default period of [`FlushMode::Period`]: 60 minutes.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60 * 60);

    pub(crate) fn check(self) -> Result<Self, ConfigError> {
        match self {
            FlushMode::Period { millis: 0 } => Err(ConfigError::ZeroFlushPeriod),
            other => Ok(other),
        }
    }
}

/// What happens when a tracked event does not fit in the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Overflow {
    /// Drop the oldest pending events until the new one fits (the default);
    /// every drop is reported with its count.
    #[default]
    DropOldest,
    /// Refuse the new event; the caller gets [`crate::TrackError::QueueFull`].
    RejectNew,
}

/// A configuration the machine accepted. Build one with [`Config::builder`].
///
/// ```
/// use core::time::Duration;
/// use outbox_core::{Config, FlushMode};
///
/// let config = Config::builder()
///     .flush_mode(FlushMode::period(Duration::from_secs(30)))
///     .max_queue_events(500)
///     .build()
///     .unwrap();
/// assert_eq!(config.max_queue_events(), 500);
/// assert!(Config::builder().max_batch_events(0).build().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    pub(crate) flush_mode: FlushMode,
    pub(crate) flush_threshold: Option<u32>,
    pub(crate) max_queue_events: u32,
    pub(crate) max_queue_bytes: u64,
    pub(crate) max_event_bytes: u32,
    pub(crate) max_batch_events: u32,
    pub(crate) max_batch_bytes: u32,
    pub(crate) batch_envelope_bytes: u32,
    pub(crate) event_envelope_bytes: u32,
    pub(crate) overflow: Overflow,
    pub(crate) retry_base_millis: u32,
    pub(crate) retry_cap_millis: u32,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_retry_after_millis: u32,
    pub(crate) flush_period_millis: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

impl Config {
    /// DESIGN.md's defaults.
    pub const DEFAULT: Config = Config {
        flush_mode: FlushMode::Immediate,
        flush_threshold: Some(20),
        max_queue_events: 1000,
        max_queue_bytes: 32 * 1024 * 1024,
        max_event_bytes: 32 * 1024,
        max_batch_events: 500,
        max_batch_bytes: 500_000,
        batch_envelope_bytes: 64,
        event_envelope_bytes: 1,
        overflow: Overflow::DropOldest,
        retry_base_millis: 1_000,
        retry_cap_millis: 32_000,
        max_attempts: None,
        max_retry_after_millis: 60 * 60 * 1000,
        flush_period_millis: 60 * 60 * 1000,
    };

    /// A builder starting from the defaults.
    pub const fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::DEFAULT,
        }
    }

    /// The flush mode.
    pub const fn flush_mode(&self) -> FlushMode {
        self.flush_mode
    }
    /// Pending count that triggers a flush in `Period` mode; `None` is off.
    pub const fn flush_threshold(&self) -> Option<u32> {
        self.flush_threshold
    }
    /// Most events the queue holds.
    pub const fn max_queue_events(&self) -> u32 {
        self.max_queue_events
    }
    /// Most payload bytes the queue holds.
    pub const fn max_queue_bytes(&self) -> u64 {
        self.max_queue_bytes
    }
    /// Largest event accepted by track.
    pub const fn max_event_bytes(&self) -> u32 {
        self.max_event_bytes
    }
    /// Most events in one batch.
    pub const fn max_batch_events(&self) -> u32 {
        self.max_batch_events
    }
    /// Most bytes in one batch, envelope included.
    pub const fn max_batch_bytes(&self) -> u32 {
        self.max_batch_bytes
    }
    /// Fixed envelope bytes counted once per batch.
    pub const fn batch_envelope_bytes(&self) -> u32 {
        self.batch_envelope_bytes
    }
    /// Envelope bytes counted per event in a batch (separators).
    pub const fn event_envelope_bytes(&self) -> u32 {
        self.event_envelope_bytes
    }
    /// The overflow policy.
    pub const fn overflow(&self) -> Overflow {
        self.overflow
    }
    /// First retry delay.
    pub const fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_millis as u64)
    }
    /// Largest computed retry delay (before jitter).
    pub const fn retry_cap(&self) -> Duration {
        Duration::from_millis(self.retry_cap_millis as u64)
    }
    /// Failed attempts after which a batch is dropped; `None` retries forever.
    pub const fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The longest Retry-After honoured; a longer one waits this long.
    pub const fn max_retry_after(&self) -> Duration {
        Duration::from_millis(self.max_retry_after_millis as u64)
    }
    /// The period `Period` mode last used or was given by `SetFlushPeriod`
    /// [60 min], remembered while another mode is active.
    pub const fn flush_period(&self) -> Duration {
        Duration::from_millis(self.flush_period_millis)
    }

    /// Bytes a batch of `events` events totalling `payload` bytes occupies.
    pub(crate) fn batch_bytes(&self, events: u32, payload: u64) -> u64 {
        u64::from(self.batch_envelope_bytes)
            + u64::from(events) * u64::from(self.event_envelope_bytes)
            + payload
    }

    /// Check every rule; the builder and runtime changes both call this.
    pub(crate) fn validate(mut self) -> Result<Config, ConfigError> {
        self.flush_mode.check()?;
        if let FlushMode::Period { millis } = self.flush_mode {
            self.flush_period_millis = millis;
        }
        if self.flush_period_millis == 0 {
            return Err(ConfigError::ZeroFlushPeriod);
        }
        if self.flush_threshold == Some(0) {
            return Err(ConfigError::ZeroFlushThreshold);
        }
        if self.max_queue_events == 0 {
            return Err(ConfigError::ZeroQueueEvents);
        }
        if self.max_event_bytes == 0 {
            return Err(ConfigError::ZeroEventBytes);
        }
        if self.max_queue_bytes < u64::from(self.max_event_bytes) {
            return Err(ConfigError::QueueBytesBelowEventBytes);
        }
        if self.max_batch_events == 0 {
            return Err(ConfigError::ZeroBatchEvents);
        }
        if self.batch_bytes(1, u64::from(self.max_event_bytes)) > u64::from(self.max_batch_bytes) {
            return Err(ConfigError::BatchBytesBelowEventBytes);
        }
        if self.retry_base_millis == 0 {
            return Err(ConfigError::ZeroRetryBase);
        }
        if self.retry_cap_millis < self.retry_base_millis {
            return Err(ConfigError::RetryCapBelowBase);
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        Ok(self)
    }
}

/// Builds a [`Config`]; every setter takes the value as given and
/// [`build`](ConfigBuilder::build) checks them together.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Flush mode [`FlushMode::Immediate`].
    pub const fn flush_mode(mut self, mode: FlushMode) -> Self {
        self.config.flush_mode = mode;
        self
    }
    /// Threshold for `Period` mode [20]; `None` turns it off.
    pub const fn flush_threshold(mut self, threshold: Option<u32>) -> Self {
        self.config.flush_threshold = threshold;
        self
    }
    /// Most events the queue holds [1000].
    pub const fn max_queue_events(mut self, n: u32) -> Self {
        self.config.max_queue_events = n;
        self
    }
    /// Most payload bytes the queue holds [32 MiB].
    pub const fn max_queue_bytes(mut self, n: u64) -> Self {
        self.config.max_queue_bytes = n;
        self
    }
    /// Largest event accepted [32 KiB].
    pub const fn max_event_bytes(mut self, n: u32) -> Self {
        self.config.max_event_bytes = n;
        self
    }
    /// Most events in a batch [500].
    pub const fn max_batch_events(mut self, n: u32) -> Self {
        self.config.max_batch_events = n;
        self
    }
    /// Most bytes in a batch including the envelope [500 000, the limit
    /// of Segment's batch API; its SDKs stay at or under it].
    pub const fn max_batch_bytes(mut self, n: u32) -> Self {
        self.config.max_batch_bytes = n;
        self
    }
    /// Envelope overhead: `per_batch` bytes once, `per_event` bytes per event
    /// [64 and 1, which covers `{"batch":[...],"sentAt":"..."}` and commas].
    pub const fn envelope_bytes(mut self, per_batch: u32, per_event: u32) -> Self {
        self.config.batch_envelope_bytes = per_batch;
        self.config.event_envelope_bytes = per_event;
        self
    }
    /// Overflow policy [`Overflow::DropOldest`].
    pub const fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }
    /// Backoff base and cap [1 s doubling to 32 s].
    pub fn retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.config.retry_base_millis = u32::try_from(duration_millis(base)).unwrap_or(u32::MAX);
        self.config.retry_cap_millis = u32::try_from(duration_millis(cap)).unwrap_or(u32::MAX);
        self
    }
    /// Drop a batch after this many failed attempts [`None`: retry forever].
    pub const fn max_attempts(mut self, n: Option<u32>) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Cap on a server's Retry-After [1 hour], so a wild answer cannot park
    /// the queue for days.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.config.max_retry_after_millis =
            u32::try_from(duration_millis(cap)).unwrap_or(u32::MAX);
        self
    }
    /// Period for `Period` mode when it is chosen later [60 min].
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.config.flush_period_millis = duration_millis(period);
        self
    }

    /// Check the settings together.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.config.validate()
    }
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `Period` with a zero period would flush in a busy loop.
    ZeroFlushPeriod,
    /// A threshold of zero would flush with nothing pending; use `None`.
    ZeroFlushThreshold,
    /// The queue must hold at least one event.
    ZeroQueueEvents,
    /// The queue must hold at least one maximal event.
    QueueBytesBelowEventBytes,
    /// The largest event must be at least one byte.
    ZeroEventBytes,
    /// A batch must hold at least one event.
    ZeroBatchEvents,
    /// A batch must hold one maximal event plus its envelope.
    BatchBytesBelowEventBytes,
    /// The first retry delay must be positive.
    ZeroRetryBase,
    /// The backoff cap must not be below its base.
    RetryCapBelowBase,
    /// Zero attempts would drop every batch unsent; use `None` to retry forever.
    ZeroMaxAttempts,
    /// `max_queue_events` is above the machine's compile-time capacity.
    QueueAboveCapacity {
        /// The machine's capacity `N`.
        capacity: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroFlushPeriod => f.write_str("flush period must be greater than zero"),
            ConfigError::ZeroFlushThreshold => {
                f.write_str("flush threshold must be at least 1 (or turned off)")
            }
            ConfigError::ZeroQueueEvents => f.write_str("max_queue_events must be at least 1"),
            ConfigError::QueueBytesBelowEventBytes => {
                f.write_str("max_queue_bytes must be at least max_event_bytes")
            }
            ConfigError::ZeroEventBytes => f.write_str("max_event_bytes must be at least 1"),
            ConfigError::ZeroBatchEvents => f.write_str("max_batch_events must be at least 1"),
            ConfigError::BatchBytesBelowEventBytes => f.write_str(
                "max_batch_bytes must hold one event of max_event_bytes plus the envelope",
            ),
            ConfigError::ZeroRetryBase => f.write_str("retry base delay must be greater than zero"),
            ConfigError::RetryCapBelowBase => {
                f.write_str("retry cap must not be below the retry base delay")
            }
            ConfigError::ZeroMaxAttempts => {
                f.write_str("max_attempts must be at least 1 (or unlimited)")
            }
            ConfigError::QueueAboveCapacity { capacity } => write!(
                f,
                "max_queue_events exceeds the machine's capacity of {capacity} events"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design() {
        let c = Config::default();
        assert_eq!(c.flush_mode(), FlushMode::Immediate);
        assert_eq!(c.flush_threshold(), Some(20));
        assert_eq!(c.max_queue_events(), 1000);
        assert_eq!(c.max_event_bytes(), 32 * 1024);
        assert_eq!(c.max_batch_events(), 500);
        assert_eq!(c.max_batch_bytes(), 500_000);
        assert_eq!(c.overflow(), Overflow::DropOldest);
        assert_eq!(c.retry_base(), Duration::from_secs(1));
        assert_eq!(c.retry_cap(), Duration::from_secs(32));
        assert_eq!(c.max_attempts(), None);
        assert_eq!(FlushMode::DEFAULT_PERIOD, Duration::from_secs(3600));
        assert_eq!(Config::builder().build(), Ok(c));
    }

    #[test]
    fn nonsense_is_a_typed_error() {
        let b = Config::builder();
        assert_eq!(
            b.max_batch_events(0).build(),
            Err(ConfigError::ZeroBatchEvents)
        );
        assert_eq!(
            b.max_queue_events(0).build(),
            Err(ConfigError::ZeroQueueEvents)
        );
        assert_eq!(
            b.max_batch_bytes(1000).build(),
            Err(ConfigError::BatchBytesBelowEventBytes)
        );
        assert_eq!(
            b.flush_mode(FlushMode::period(Duration::ZERO)).build(),
            Err(ConfigError::ZeroFlushPeriod)
        );
        assert_eq!(
            b.flush_threshold(Some(0)).build(),
            Err(ConfigError::ZeroFlushThreshold)
        );
        assert_eq!(
            b.retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
                .build(),
            Err(ConfigError::RetryCapBelowBase)
        );
        assert_eq!(
            b.retry_backoff(Duration::ZERO, Duration::from_secs(1))
                .build(),
            Err(ConfigError::ZeroRetryBase)
        );
        assert_eq!(
            b.max_attempts(Some(0)).build(),
            Err(ConfigError::ZeroMaxAttempts)
        );
        assert_eq!(
            b.max_event_bytes(0).build(),
            Err(ConfigError::ZeroEventBytes)
        );
        assert_eq!(
            b.max_queue_bytes(10).build(),
            Err(ConfigError::QueueBytesBelowEventBytes)
        );
        assert!(b.flush_threshold(None).build().is_ok());
    }
}
