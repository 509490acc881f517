//! A sliding-window rate limiter for expensive requests (report exports).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `limit` events per `window`, counted over a sliding window.
#[derive(Debug)]
pub struct WindowLimiter {
    limit: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl WindowLimiter {
    /// A limiter allowing `limit` events per `window`.
    pub fn new(limit: usize, window: Duration) -> WindowLimiter {
        WindowLimiter {
            limit,
            window,
            recent: VecDeque::with_capacity(limit),
        }
    }

    /// Counts an event at `now` if the window has room; false (and not
    /// counted) otherwise.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_slides() {
        let mut l = WindowLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(l.try_acquire(t0));
        assert!(l.try_acquire(t0 + Duration::from_secs(1)));
        assert!(!l.try_acquire(t0 + Duration::from_secs(2)));
        // The first event leaves the window after 10 s; the refused one was not counted.
        assert!(l.try_acquire(t0 + Duration::from_secs(11)));
        assert!(!l.try_acquire(t0 + Duration::from_secs(11)));
    }
}
