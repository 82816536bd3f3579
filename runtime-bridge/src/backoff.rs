//! Reconnection policy: how many attempts, and how long to wait before each.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Attempts after a failure before giving up; 0 retries forever.
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (1-based), or `None` when attempts are used up.
    pub fn delay(&self, n: u32) -> Option<Duration> {
        if n == 0 || (self.max_attempts > 0 && n > self.max_attempts) {
            return None;
        }
        let factor = self
            .multiplier
            .max(1.0)
            .powi(n.saturating_sub(1).min(64) as i32);
        let ms = (self.initial.as_millis() as f64 * factor).min(self.max.as_millis() as f64);
        Some(Duration::from_millis(ms as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_stops_after_the_attempts() {
        let b = Backoff {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 3.0,
        };
        let delays: Vec<_> = (1..=6).map(|n| b.delay(n).map(|d| d.as_millis())).collect();
        assert_eq!(
            delays,
            [
                Some(100),
                Some(300),
                Some(900),
                Some(1000),
                Some(1000),
                None
            ]
        );
        let forever = Backoff {
            max_attempts: 0,
            ..b
        };
        assert_eq!(forever.delay(1000), Some(Duration::from_millis(1000)));
    }
}
