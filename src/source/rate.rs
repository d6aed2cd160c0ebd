//! Pacing the data stream to a rate limit in Mbit/s (0 = none), changeable
//! while a pass runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The current limit, shared with whoever may change it during a run: the
/// source's own limit or schedule sets the base; the receiver's operator may
/// override it through the control API (and lift the override again).
#[derive(Debug, Clone)]
pub struct RateLimit(Arc<Limits>);

#[derive(Debug)]
struct Limits {
    base: AtomicU64,
    /// `NO_OVERRIDE` when the receiver has not overridden the base.
    over: AtomicU64,
}

const NO_OVERRIDE: u64 = u64::MAX;

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new(0)
    }
}

impl RateLimit {
    /// `mbit` Mbit/s; 0 means unlimited.
    pub fn new(mbit: u64) -> Self {
        RateLimit(Arc::new(Limits {
            base: AtomicU64::new(mbit),
            over: AtomicU64::new(NO_OVERRIDE),
        }))
    }
    /// Set the source's own limit (from the command line or the schedule).
    pub fn set(&self, mbit: u64) {
        self.0.base.store(mbit, Ordering::Relaxed);
    }
    /// The receiver's override (`Some(0)`: unlimited), or `None` to go back
    /// to the source's own limit.
    pub fn set_override(&self, mbit: Option<u64>) {
        let v = mbit.map_or(NO_OVERRIDE, |m| m.min(NO_OVERRIDE - 1));
        self.0.over.store(v, Ordering::Relaxed);
    }
    pub fn overridden(&self) -> Option<u64> {
        match self.0.over.load(Ordering::Relaxed) {
            NO_OVERRIDE => None,
            v => Some(v),
        }
    }
    /// The limit in force, Mbit/s (0 = none).
    pub fn get(&self) -> u64 {
        self.overridden()
            .unwrap_or_else(|| self.0.base.load(Ordering::Relaxed))
    }
}

/// A token bucket with a short burst: `delay` says how long to wait before
/// sending `bytes` so the average stays at the limit.
#[derive(Debug)]
pub struct Pacer {
    next: Instant,
    burst: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            next: Instant::now(),
            burst: Duration::from_millis(100),
        }
    }
}

impl Pacer {
    pub fn delay(&mut self, bytes: u64, mbit: u64, now: Instant) -> Duration {
        if mbit == 0 {
            self.next = now;
            return Duration::ZERO;
        }
        let cost = Duration::from_secs_f64(bytes as f64 * 8.0 / (mbit as f64 * 1e6));
        self.next = self.next.max(now) + cost;
        (self.next - now).saturating_sub(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_limit() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        // 8 Mbit/s = 1 MB/s: ten 100 kB frames offered at once take one
        // second; the first 100 ms ride the burst.
        let waits: Vec<Duration> = (0..10).map(|_| p.delay(100_000, 8, t0)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        let last = waits[9].as_secs_f64();
        assert!((last - 0.9).abs() < 0.001, "{last}");
        assert_eq!(p.delay(100_000, 0, t0), Duration::ZERO, "0 = unlimited");
        let r = RateLimit::new(5);
        r.set(7);
        assert_eq!(r.clone().get(), 7);
        r.set_override(Some(0));
        r.set(9);
        assert_eq!(r.get(), 0, "the receiver's override wins over the base");
        r.set_override(None);
        assert_eq!(r.get(), 9, "lifting the override restores the base");
    }
}
