//! How long to wait before the next attempt: exponential backoff with
//! jitter, and the floors a failure's kind sets (credentials and refused
//! security settings wait much longer; a server that asks to wait is
//! given a while).

use std::time::Duration;

use crate::session::SessionError;

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            current: min,
            min,
            max,
        }
    }

    /// The next delay (doubling, ±20 % jitter so many clients do not retry in
    /// step), raised to at least `floor`.
    pub fn next_delay(&mut self, floor: Duration) -> Duration {
        let base = self.current.max(floor).min(self.max.max(floor));
        self.current = (base * 2).min(self.max);
        let jitter = 0.8 + fastrand::f64() * 0.4;
        base.mul_f64(jitter)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }

    /// The delay after `e`: at least five minutes when retrying soon cannot
    /// help, thirty seconds when the server asked clients to wait.
    pub fn after(&mut self, e: &SessionError) -> Duration {
        let floor = if e.is_permanent() {
            Duration::from_secs(300)
        } else if e.server_asks_to_wait() {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        };
        self.next_delay(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d1 = b.next_delay(Duration::ZERO);
        assert!(d1 >= Duration::from_millis(800) && d1 <= Duration::from_millis(1200));
        let d2 = b.next_delay(Duration::ZERO);
        assert!(d2 >= Duration::from_millis(1600) && d2 <= Duration::from_millis(2400));
        for _ in 0..20 {
            b.next_delay(Duration::ZERO);
        }
        assert!(b.next_delay(Duration::ZERO) <= Duration::from_secs(360));
        b.reset();
        assert!(b.next_delay(Duration::ZERO) <= Duration::from_millis(1200));
        // Credentials errors wait at least the floor.
        assert!(b.next_delay(Duration::from_secs(300)) >= Duration::from_secs(240));
    }
}
