//! The server's memory and open files over a run: RSS (`VmRSS`) and the number of open file
//! descriptors, sampled every few seconds, and the growth between two parts of the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::procstat;

/// One sample.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since sampling started.
    pub t_s: f64,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Samples a process in the background until dropped or stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Samples `pid` every `every`, starting now.
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Some(sample) = sample(pid, start) {
                    into.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
                }
            }
        });
        Sampler { samples, task }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops sampling and returns every sample.
    pub fn stop(self) -> Vec<Sample> {
        self.task.abort();
        self.samples()
    }
}

/// One sample of `pid` now, `t_s` counted from `start`.
pub fn sample(pid: u32, start: Instant) -> Option<Sample> {
    Some(Sample {
        t_s: start.elapsed().as_secs_f64(),
        rss: procstat::rss_bytes(pid)?,
        fds: procstat::fd_count(pid)?,
    })
}

/// Growth of RSS and fds between the start and the end of the samples from `from_s` on:
/// the median of the first tenth (at least 3 samples) against the median of the last tenth.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Growth {
    /// Samples in the window.
    pub samples: usize,
    /// RSS at the window's start and end, bytes.
    pub rss_start: u64,
    /// RSS at the window's end, bytes.
    pub rss_end: u64,
    /// RSS growth, percent.
    pub rss_pct: f64,
    /// Open fds at the window's start.
    pub fds_start: u64,
    /// Open fds at the window's end.
    pub fds_end: u64,
    /// Open fd growth, percent.
    pub fds_pct: f64,
    /// Largest RSS in the window, bytes.
    pub rss_max: u64,
}

impl Growth {
    /// The growth over samples at or after `from_s`; `None` with fewer than 6 samples.
    pub fn over(samples: &[Sample], from_s: f64) -> Option<Growth> {
        let window: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= from_s).collect();
        if window.len() < 6 {
            return None;
        }
        let n = (window.len() / 10).max(3);
        let median = |part: &[&Sample], field: fn(&Sample) -> u64| {
            let mut values: Vec<u64> = part.iter().map(|s| field(s)).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let head = &window[..n];
        let tail = &window[window.len() - n..];
        let pct = |a: u64, b: u64| (b as f64 - a as f64) / (a.max(1) as f64) * 100.0;
        let (rss_start, rss_end) = (median(head, |s| s.rss), median(tail, |s| s.rss));
        let (fds_start, fds_end) = (median(head, |s| s.fds), median(tail, |s| s.fds));
        Some(Growth {
            samples: window.len(),
            rss_start,
            rss_end,
            rss_pct: pct(rss_start, rss_end),
            fds_start,
            fds_end,
            fds_pct: pct(fds_start, fds_end),
            rss_max: window.iter().map(|s| s.rss).max().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, rss: u64, fds: u64) -> Sample {
        Sample { t_s, rss, fds }
    }

    #[test]
    fn growth_compares_medians_of_the_window_ends() {
        let mut samples = vec![at(0.0, 10, 10), at(1.0, 500, 900)];
        for i in 0..30u32 {
            let t = 10.0 + f64::from(i);
            samples.push(at(t, 1000 + u64::from(i) * 10, 100));
        }
        let g = Growth::over(&samples, 5.0).unwrap();
        assert_eq!(g.samples, 30);
        assert_eq!((g.rss_start, g.rss_end), (1010, 1280));
        assert!((g.rss_pct - 26.7).abs() < 0.1, "{g:?}");
        assert_eq!((g.fds_start, g.fds_end, g.fds_pct), (100, 100, 0.0));
        assert_eq!(g.rss_max, 1290);
        assert_eq!(Growth::over(&samples, 100.0), None);
    }
}
