//! Fault injection: what a collector does wrong on purpose.
//!
//! A [`Faults`] is asked at three points of every batch: before the request
//! is answered at all (refuse: the network looks down), after the batch
//! passed every check but before it is committed (fail with a status), and
//! after it was committed (drop the response: the client never learns it
//! landed, and will send it again). [`RandomFaults`] is the `outbox collect`
//! flags; the demo scripts its own.

/// What the collector knows about a batch when it asks a [`Faults`].
#[derive(Clone, Copy, Debug)]
pub struct BatchInfo {
    /// 1 for the first POST to /v1/batch, counting every one.
    pub number: u64,
    /// Events in this batch.
    pub events: usize,
    /// Distinct events the collector had accepted before this batch.
    pub accepted_before: u64,
}

/// An injected error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The status to answer (4xx or 5xx).
    pub status: u16,
    /// A Retry-After header, in seconds.
    pub retry_after: Option<u64>,
}

/// Decides which faults to inject. Called with the collector's state locked,
/// so calls are serialised and see batches in the order they are handled.
pub trait Faults: Send {
    /// Asked before a request is answered: `true` closes the connection
    /// without reading further or answering, as if the network were down.
    fn refuse(&mut self) -> bool {
        false
    }
    /// Asked for a batch that passed every check, before it is committed:
    /// an error to answer instead (nothing is committed).
    fn fail(&mut self, _batch: &BatchInfo) -> Option<Failure> {
        None
    }
    /// Asked after a batch was committed: `true` closes the connection
    /// without answering.
    fn drop_response(&mut self, _batch: &BatchInfo) -> bool {
        false
    }
}

/// No faults at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFaults;

impl Faults for NoFaults {}

/// Faults drawn at random with fixed rates (the `outbox collect` flags).
#[derive(Clone, Debug)]
pub struct RandomFaults {
    /// Probability that a valid batch gets `fail_status` instead of being committed.
    pub fail_rate: f64,
    /// The status of an injected failure.
    pub fail_status: u16,
    /// Retry-After (seconds) sent with injected failures.
    pub retry_after: Option<u64>,
    /// Probability that a committed batch gets no answer.
    pub drop_response_rate: f64,
    rng: Rng,
}

impl RandomFaults {
    /// Faults with these rates, drawn from `seed`.
    pub fn new(
        fail_rate: f64,
        fail_status: u16,
        retry_after: Option<u64>,
        drop_response_rate: f64,
        seed: u64,
    ) -> Self {
        RandomFaults {
            fail_rate,
            fail_status,
            retry_after,
            drop_response_rate,
            rng: Rng::new(seed),
        }
    }
}

impl Faults for RandomFaults {
    fn fail(&mut self, _batch: &BatchInfo) -> Option<Failure> {
        (self.fail_rate > 0.0 && self.rng.unit() < self.fail_rate).then_some(Failure {
            status: self.fail_status,
            retry_after: self.retry_after,
        })
    }

    fn drop_response(&mut self, _batch: &BatchInfo) -> bool {
        self.drop_response_rate > 0.0 && self.rng.unit() < self.drop_response_rate
    }
}

/// xorshift64*: small, seedable, good enough for fault rates.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // splitmix64 once, so nearby seeds diverge and zero is not a fixed point.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected_roughly() {
        let mut f = RandomFaults::new(0.25, 503, Some(2), 0.0, 7);
        let info = BatchInfo {
            number: 1,
            events: 1,
            accepted_before: 0,
        };
        let fails = (0..10_000).filter(|_| f.fail(&info).is_some()).count();
        assert!((2_000..3_000).contains(&fails), "{fails}");
        assert!(!(0..1000).any(|_| f.drop_response(&info)));
        let mut always = RandomFaults::new(1.0, 429, None, 1.0, 0);
        assert_eq!(
            always.fail(&info),
            Some(Failure {
                status: 429,
                retry_after: None
            })
        );
        assert!(always.drop_response(&info));
    }
}
