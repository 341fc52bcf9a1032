//! Log lines for events a client can repeat at will: a connection flood makes one refusal
//! per connection, thousands a second, and a line for each would fill the disk. A
//! [`Throttle`] lets the first line through and then at most one per interval, which says
//! how many it stood for; the metrics still count every event.

use std::time::{Duration, Instant};

/// At most one log line per `interval` for one kind of event.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// A throttle letting one line through per `interval`.
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// An event at `now`: `Some(n)` when it is to be logged, `n` being the events not logged
    /// since the last line; `None` when it is counted into the next line.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + self.interval);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let start = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1));
        assert_eq!(t.allow(start), Some(0));
        for ms in 1..1000 {
            assert_eq!(t.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.allow(start + Duration::from_millis(1000)), Some(999));
        assert_eq!(t.allow(start + Duration::from_millis(1500)), None);
        assert_eq!(t.allow(start + Duration::from_secs(5)), Some(1));
        assert_eq!(t.allow(start + Duration::from_secs(7)), Some(0));
    }
}
