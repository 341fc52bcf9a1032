//! A viewer's timeline check: every video timestamp it receives must be no earlier than the
//! one before and at most one frame interval plus a tolerance later (wrapping u32
//! arithmetic, so an output that crosses 2^32 ms is still continuous).

use serde::Serialize;

/// Checks one viewer's video timestamps as they arrive.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    /// Video frames checked.
    pub frames: u64,
    /// Steps backwards.
    pub backwards: u64,
    /// Steps forward longer than `max_step_ms`.
    pub jumps: u64,
    /// Largest forward step seen, ms.
    pub largest_step_ms: u32,
    /// The first problem, described.
    pub first_problem: Option<String>,
    /// A forward step longer than this is a jump, ms.
    max_step_ms: u32,
    last: Option<u32>,
}

impl Timeline {
    /// A timeline that allows forward steps up to `max_step_ms`.
    pub fn new(max_step_ms: u32) -> Timeline {
        Timeline {
            frames: 0,
            backwards: 0,
            jumps: 0,
            largest_step_ms: 0,
            first_problem: None,
            max_step_ms,
            last: None,
        }
    }

    /// Checks the next video timestamp.
    pub fn push(&mut self, timestamp: u32) {
        self.frames += 1;
        if let Some(last) = self.last {
            let step = i64::from(timestamp.wrapping_sub(last) as i32);
            if step < 0 {
                self.backwards += 1;
                self.note(format!(
                    "{last} -> {timestamp} ms: backwards by {} ms",
                    -step
                ));
            } else {
                let step = step as u32;
                self.largest_step_ms = self.largest_step_ms.max(step);
                if step > self.max_step_ms {
                    self.jumps += 1;
                    self.note(format!("{last} -> {timestamp} ms: jumped {step} ms"));
                }
            }
        }
        self.last = Some(timestamp);
    }

    /// The last timestamp seen.
    pub fn last(&self) -> Option<u32> {
        self.last
    }

    /// No step backwards and no jump.
    pub fn is_continuous(&self) -> bool {
        self.backwards == 0 && self.jumps == 0
    }

    fn note(&mut self, problem: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_and_wrapping_timestamps_are_continuous() {
        let mut t = Timeline::new(1033);
        for i in 0..100u32 {
            t.push((u32::MAX - 1000).wrapping_add(i * 33));
        }
        assert!(t.is_continuous(), "{t:?}");
        assert_eq!(t.frames, 100);
        assert_eq!(t.largest_step_ms, 33);
    }

    #[test]
    fn backwards_and_jumps_are_counted() {
        let mut t = Timeline::new(1033);
        t.push(1000);
        t.push(1033);
        t.push(1000);
        t.push(3000);
        t.push(3033);
        assert_eq!((t.backwards, t.jumps), (1, 1));
        assert!(!t.is_continuous());
        assert_eq!(
            t.first_problem.as_deref(),
            Some("1033 -> 1000 ms: backwards by 33 ms")
        );
        assert_eq!(t.largest_step_ms, 2000);
    }
}
