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

use crate::network::UploadPolicy;
use crate::time::{duration_millis, duration_millis_u32};

/// When the machine starts an upload by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlushMode {
    /// Every tracked event requests a flush (the default). Events tracked
    /// while a batch is in flight go in the next batch.
    #[default]
    Immediate,
    /// Flush every [`Config::flush_period`], when the pending count reaches
    /// the flush threshold, on background and terminate, and on foreground
    /// when anything is pending.
    Period,
    /// Flush on background and terminate only.
    AppClose,
    /// Never flush by itself; only an explicit flush request uploads.
    Manual,
}

impl FlushMode {
    /// The default period of [`FlushMode::Period`]: 60 minutes.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60 * 60);

    /// Whether the mode requests flushes by itself when events arrive or
    /// the network comes back (`Immediate`, `Period`).
    pub const fn is_automatic(self) -> bool {
        matches!(self, FlushMode::Immediate | FlushMode::Period)
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
///     .flush_mode(FlushMode::Period)
///     .flush_period(Duration::from_secs(30))
///     .max_queue_events(100_000)
///     .build()
///     .unwrap();
/// assert_eq!(config.max_queue_events(), 100_000);
/// assert_eq!(config.flush_period(), Duration::from_secs(30));
/// assert!(Config::builder().max_batch_events(0).build().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    pub(crate) flush_mode: FlushMode,
    pub(crate) flush_threshold: Option<u32>,
    /// The threshold was set (a default one shrinks to a smaller queue).
    pub(crate) threshold_set: bool,
    pub(crate) max_queue_events: u32,
    pub(crate) max_queue_bytes: u64,
    pub(crate) max_event_bytes: u32,
    /// `None`: the default, 500 or the machine's window `N` if smaller.
    pub(crate) max_batch_events: Option<u32>,
    pub(crate) max_batch_bytes: u32,
    pub(crate) batch_envelope_bytes: u32,
    pub(crate) event_envelope_bytes: u32,
    pub(crate) overflow: Overflow,
    pub(crate) retry_base_millis: u32,
    pub(crate) retry_cap_millis: u32,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_retry_after_millis: u32,
    pub(crate) flush_period_millis: u64,
    pub(crate) request_timeout_millis: u64,
    pub(crate) max_commit_delay_millis: u64,
    pub(crate) max_consecutive_rejections: Option<u32>,
    pub(crate) upload_on: UploadPolicy,
    /// Events older than this (wall-clock ms since their stamp) expire
    /// when a batch is formed; `None`: never.
    #[cfg(feature = "expiry")]
    pub(crate) max_event_age_millis: Option<u64>,
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
        threshold_set: false,
        max_queue_events: 1000,
        max_queue_bytes: 32 * 1024 * 1024,
        max_event_bytes: 32 * 1024,
        max_batch_events: None,
        max_batch_bytes: 500_000,
        batch_envelope_bytes: 64,
        event_envelope_bytes: 1,
        overflow: Overflow::DropOldest,
        retry_base_millis: 1_000,
        retry_cap_millis: 32_000,
        max_attempts: None,
        max_retry_after_millis: 60 * 60 * 1000,
        flush_period_millis: 60 * 60 * 1000,
        request_timeout_millis: 30_000,
        max_commit_delay_millis: 0,
        max_consecutive_rejections: Some(20),
        upload_on: UploadPolicy::Any,
        #[cfg(feature = "expiry")]
        max_event_age_millis: None,
    };

    /// The default `max_batch_events` when the machine's window holds at
    /// least that many sizes.
    pub const DEFAULT_MAX_BATCH_EVENTS: u32 = 500;

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
    /// Most events in one batch [500, or the machine's window `N` when
    /// smaller and not set].
    pub const fn max_batch_events(&self) -> u32 {
        match self.max_batch_events {
            Some(n) => n,
            None => Config::DEFAULT_MAX_BATCH_EVENTS,
        }
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
    /// The period of `Period` mode [60 min], kept while another mode is
    /// active.
    pub const fn flush_period(&self) -> Duration {
        Duration::from_millis(self.flush_period_millis)
    }
    /// How long the batch in flight may go unanswered before it counts as a
    /// transport failure [30 s].
    pub const fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_millis)
    }
    /// Group commit: how long an appended event may stay uncommitted [zero:
    /// every event is committed before `track` returns].
    pub const fn max_commit_delay(&self) -> Duration {
        Duration::from_millis(self.max_commit_delay_millis)
    }
    /// The maximum event age (feature `expiry`): `None` [default], never.
    #[cfg(feature = "expiry")]
    pub const fn max_event_age(&self) -> Option<Duration> {
        match self.max_event_age_millis {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        }
    }
    /// Which networks uploads may use [`UploadPolicy::Any`].
    pub const fn upload_on(&self) -> UploadPolicy {
        self.upload_on
    }
    /// Rejected single events in a row (no delivery between) after which
    /// uploads halt [20]; `None` never halts.
    pub const fn max_consecutive_rejections(&self) -> Option<u32> {
        self.max_consecutive_rejections
    }

    /// The configuration a machine with a window of `window` sizes runs
    /// with: the default batch size shrinks to fit the window.
    pub(crate) fn for_window(mut self, window: usize) -> Result<Config, ConfigError> {
        let window = u32::try_from(window).unwrap_or(u32::MAX);
        match self.max_batch_events {
            None => {
                if window == 0 {
                    return Err(ConfigError::BatchAboveWindow { window });
                }
                self.max_batch_events = Some(Config::DEFAULT_MAX_BATCH_EVENTS.min(window));
            }
            Some(n) if n > window => return Err(ConfigError::BatchAboveWindow { window }),
            Some(_) => {}
        }
        Ok(self)
    }

    /// Bytes a batch of `events` events totalling `payload` bytes occupies.
    pub(crate) const fn batch_bytes(&self, events: u64, payload: u64) -> u64 {
        // `as`, not `u64::from`: const.
        (self.batch_envelope_bytes as u64)
            .saturating_add(events.saturating_mul(self.event_envelope_bytes as u64))
            .saturating_add(payload)
    }

    /// Check every rule; the builder and runtime changes both call this.
    // Const (see `ConfigBuilder::build`): matches instead of `?` and `map`.
    pub(crate) const fn validate(mut self) -> Result<Config, ConfigError> {
        if self.flush_period_millis == 0 {
            return Err(ConfigError::ZeroFlushPeriod);
        }
        if self.max_queue_events == 0 {
            return Err(ConfigError::ZeroQueueEvents);
        }
        if !self.threshold_set {
            if let Some(t) = self.flush_threshold {
                if t > self.max_queue_events {
                    self.flush_threshold = Some(self.max_queue_events);
                }
            }
        }
        if let Err(e) = self.check_threshold(self.flush_threshold) {
            return Err(e);
        }
        if self.max_event_bytes == 0 {
            return Err(ConfigError::ZeroEventBytes);
        }
        if self.max_event_bytes >= crate::CRITICAL {
            return Err(ConfigError::EventBytesTooLarge);
        }
        if self.max_queue_bytes < self.max_event_bytes as u64 {
            return Err(ConfigError::QueueBytesBelowEventBytes);
        }
        if matches!(self.max_batch_events, Some(0)) {
            return Err(ConfigError::ZeroBatchEvents);
        }
        if self.batch_bytes(1, self.max_event_bytes as u64) > self.max_batch_bytes as u64 {
            return Err(ConfigError::BatchBytesBelowEventBytes);
        }
        if self.retry_base_millis == 0 {
            return Err(ConfigError::ZeroRetryBase);
        }
        if self.retry_cap_millis < self.retry_base_millis {
            return Err(ConfigError::RetryCapBelowBase);
        }
        if matches!(self.max_attempts, Some(0)) {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        if self.request_timeout_millis == 0 {
            return Err(ConfigError::ZeroRequestTimeout);
        }
        if matches!(self.max_consecutive_rejections, Some(0)) {
            return Err(ConfigError::ZeroConsecutiveRejections);
        }
        #[cfg(feature = "expiry")]
        if matches!(self.max_event_age_millis, Some(0)) {
            return Err(ConfigError::ZeroMaxEventAge);
        }
        Ok(self)
    }

    /// A flush threshold is at least 1 and at most `max_queue_events` (a
    /// queue that never gets that long would never reach it).
    pub(crate) const fn check_threshold(&self, threshold: Option<u32>) -> Result<(), ConfigError> {
        match threshold {
            Some(0) => Err(ConfigError::ZeroFlushThreshold),
            Some(t) if t > self.max_queue_events => Err(ConfigError::ThresholdAboveQueue {
                threshold: t,
                max_queue_events: self.max_queue_events,
            }),
            _ => Ok(()),
        }
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
    /// Threshold for `Period` mode [20, or `max_queue_events` if smaller];
    /// `None` turns it off. Above `max_queue_events` it is an error.
    pub const fn flush_threshold(mut self, threshold: Option<u32>) -> Self {
        self.config.flush_threshold = threshold;
        self.config.threshold_set = true;
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
    /// Most events in a batch [500, or the machine's window `N` if smaller];
    /// at most `N`.
    pub const fn max_batch_events(mut self, n: u32) -> Self {
        self.config.max_batch_events = Some(n);
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
    pub const fn retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.config.retry_base_millis = duration_millis_u32(base);
        self.config.retry_cap_millis = duration_millis_u32(cap);
        self
    }
    /// Drop a batch after this many failed attempts [`None`: retry forever].
    pub const fn max_attempts(mut self, n: Option<u32>) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Cap on a server's Retry-After [1 hour], so a wild answer cannot park
    /// the queue for days.
    pub const fn max_retry_after(mut self, cap: Duration) -> Self {
        self.config.max_retry_after_millis = duration_millis_u32(cap);
        self
    }
    /// Period of `Period` mode [60 min] (also when the mode is chosen later).
    pub const fn flush_period(mut self, period: Duration) -> Self {
        self.config.flush_period_millis = duration_millis(period);
        self
    }
    /// Deadline of the batch in flight [30 s]; no answer by then is a
    /// transport failure, retried with backoff.
    pub const fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout_millis = duration_millis(timeout);
        self
    }
    /// Group commit [zero: off]: appended events may wait up to `delay`
    /// for one commit with others; the machine asks for the commit by then
    /// (and always before a send).
    pub const fn max_commit_delay(mut self, delay: Duration) -> Self {
        self.config.max_commit_delay_millis = duration_millis(delay);
        self
    }
    /// Halt uploads after this many rejected single events in a row [20];
    /// `None` never halts.
    pub const fn max_consecutive_rejections(mut self, n: Option<u32>) -> Self {
        self.config.max_consecutive_rejections = n;
        self
    }

    /// Which networks uploads may use [`UploadPolicy::Any`]; under
    /// [`UploadPolicy::Unmetered`] a metered or unknown network counts as
    /// down for uploads, explicit flushes included (see [`crate::network`]).
    pub const fn upload_on(mut self, policy: UploadPolicy) -> Self {
        self.config.upload_on = policy;
        self
    }

    /// The maximum event age [`None`: never] (feature `expiry`): an event
    /// older than this, by the wall clock since the adapter stamped it at
    /// its track ([`Input::WallClock`](crate::Input::WallClock)), is dropped
    /// as [`DropReason::Expired`](crate::DropReason::Expired) when its
    /// batch is formed, never sent. Critical events never expire.
    ///
    /// ```
    /// use core::time::Duration;
    /// use outbox_core::Config;
    /// let five_days = Duration::from_secs(5 * 24 * 3600);
    /// let c = Config::builder().max_event_age(Some(five_days)).build().unwrap();
    /// assert_eq!(c.max_event_age(), Some(five_days));
    /// assert!(Config::builder().max_event_age(Some(Duration::ZERO)).build().is_err());
    /// ```
    #[cfg(feature = "expiry")]
    pub const fn max_event_age(mut self, age: Option<Duration>) -> Self {
        self.config.max_event_age_millis = match age {
            Some(a) => Some(duration_millis(a)),
            None => None,
        };
        self
    }

    /// Check the settings together. Const: a `Config` can be built and
    /// checked at compile time (a firmware's, so no code builds it).
    pub const fn build(self) -> Result<Config, ConfigError> {
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
    /// `max_event_bytes` must stay below 2 GiB ([`CRITICAL`](crate::CRITICAL)
    /// is a flag bit of a size).
    EventBytesTooLarge,
    /// A batch must hold one maximal event plus its envelope.
    BatchBytesBelowEventBytes,
    /// The first retry delay must be positive.
    ZeroRetryBase,
    /// The backoff cap must not be below its base.
    RetryCapBelowBase,
    /// Zero attempts would drop every batch unsent; use `None` to retry forever.
    ZeroMaxAttempts,
    /// `max_batch_events` is above the machine's window `N` (a batch's
    /// sizes must fit the window).
    BatchAboveWindow {
        /// The machine's window `N`.
        window: u32,
    },
    /// The flush threshold is above `max_queue_events`, so it could never
    /// be reached.
    ThresholdAboveQueue {
        /// The threshold.
        threshold: u32,
        /// The queue limit.
        max_queue_events: u32,
    },
    /// A zero request timeout would fail every batch at once.
    ZeroRequestTimeout,
    /// Zero would halt before any rejection; use `None` to never halt.
    ZeroConsecutiveRejections,
    /// A zero maximum event age would expire every event; use `None` for
    /// never.
    #[cfg(feature = "expiry")]
    ZeroMaxEventAge,
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
            ConfigError::EventBytesTooLarge => f.write_str("max_event_bytes must be below 2 GiB"),
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
            ConfigError::BatchAboveWindow { window } => write!(
                f,
                "max_batch_events exceeds the machine's window of {window} sizes"
            ),
            ConfigError::ThresholdAboveQueue {
                threshold,
                max_queue_events,
            } => write!(
                f,
                "flush threshold {threshold} is above max_queue_events ({max_queue_events})"
            ),
            ConfigError::ZeroRequestTimeout => {
                f.write_str("request timeout must be greater than zero")
            }
            ConfigError::ZeroConsecutiveRejections => {
                f.write_str("max_consecutive_rejections must be at least 1 (or None)")
            }
            #[cfg(feature = "expiry")]
            ConfigError::ZeroMaxEventAge => {
                f.write_str("max_event_age must be greater than zero (or None)")
            }
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
            b.flush_mode(FlushMode::Period)
                .flush_period(Duration::ZERO)
                .build(),
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
        assert_eq!(
            b.request_timeout(Duration::ZERO).build(),
            Err(ConfigError::ZeroRequestTimeout)
        );
        assert_eq!(
            b.max_consecutive_rejections(Some(0)).build(),
            Err(ConfigError::ZeroConsecutiveRejections)
        );
    }

    /// Issue 8 item 7: a threshold the queue can never reach was accepted.
    #[test]
    fn a_threshold_above_the_queue_is_a_typed_error() {
        let b = Config::builder().max_queue_events(10);
        assert_eq!(
            b.flush_threshold(Some(11)).build(),
            Err(ConfigError::ThresholdAboveQueue {
                threshold: 11,
                max_queue_events: 10
            })
        );
        assert!(b.flush_threshold(Some(10)).build().is_ok());
    }

    /// Issue 8 item 7: `flush_mode(period(30 s)).flush_period(10 s)` kept
    /// 30 s silently; now the period has one setter.
    #[test]
    fn the_period_has_one_setter() {
        let c = Config::builder()
            .flush_mode(FlushMode::Period)
            .flush_period(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(c.flush_period(), Duration::from_secs(10));
        assert_eq!(c.flush_mode(), FlushMode::Period);
    }

    #[test]
    fn the_default_batch_shrinks_to_the_window() {
        let c = Config::default();
        assert_eq!(c.for_window(64).unwrap().max_batch_events(), 64);
        assert_eq!(c.for_window(4096).unwrap().max_batch_events(), 500);
        let explicit = Config::builder().max_batch_events(100).build().unwrap();
        assert_eq!(
            explicit.for_window(64),
            Err(ConfigError::BatchAboveWindow { window: 64 })
        );
    }
}
