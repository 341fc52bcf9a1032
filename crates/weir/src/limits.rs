//! Per-address connection limits: `rtmp.max_connections_per_ip` counts a client address's
//! RTMP, RTMPS and HTTP connections together, `rtmp.max_connection_rate_per_ip` how many it
//! opens per second; one more is refused at accept (or, behind a PROXY-protocol balancer,
//! once the header named the client) with a log line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Addresses whose buckets are kept at most; past that, full buckets are forgotten.
const MAX_BUCKETS: usize = 65_536;

/// New connections per address per second: a token bucket per address holding up to `rate`
/// tokens (the burst), refilled at `rate` per second.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    rate: std::sync::atomic::AtomicU32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Rate {
    /// A limit of `rate` new connections per second per address (0: none).
    pub(crate) fn new(rate: u32) -> Rate {
        Rate {
            rate: std::sync::atomic::AtomicU32::new(rate),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A new limit (a reload); 0 for none.
    pub(crate) fn set(&self, rate: u32) {
        self.rate.store(rate, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `ip` may open one more connection now (and counts it).
    pub(crate) fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.rate.load(std::sync::atomic::Ordering::Relaxed);
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&ip) {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < rate
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Connections held per client address.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    /// Most connections one address may hold; 0 for no limit.
    max: std::sync::atomic::AtomicUsize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One held connection of an address; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct IpSlot {
    owner: Option<Arc<PerIp>>,
    ip: IpAddr,
}

impl PerIp {
    /// A counter allowing `max` connections per address (0: no limit).
    pub(crate) fn new(max: usize) -> PerIp {
        PerIp {
            max: std::sync::atomic::AtomicUsize::new(max),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A new limit (a reload); 0 for none. Connections held beyond it stay.
    pub(crate) fn set(&self, max: usize) {
        self.max.store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// A place for one more connection from `ip`, or `None` at the limit.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let max = self.max();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            owner: Some(Arc::clone(self)),
            ip,
        })
    }

    /// The limit (0: none).
    pub(crate) fn max(&self) -> usize {
        self.max.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        let mut counts = owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_allows_a_burst_then_refills() {
        let rate = Rate::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| rate.allow(a, t0)));
        assert!(!rate.allow(a, t0), "a fourth at once");
        assert!(rate.allow(b, t0), "another address has its own bucket");
        let later = t0 + std::time::Duration::from_millis(340);
        assert!(
            rate.allow(a, later),
            "one token back after a third of a second"
        );
        assert!(!rate.allow(a, later));
        assert!((0..100).all(|_| Rate::new(0).allow(a, t0)));
    }

    #[test]
    fn places_are_counted_per_address_and_given_back() {
        let limits = Arc::new(PerIp::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let first = limits.take(a).unwrap();
        let _second = limits.take(a).unwrap();
        assert!(limits.take(a).is_none());
        assert!(
            limits.take(b).is_some(),
            "another address has its own count"
        );
        drop(first);
        assert!(limits.take(a).is_some());
        let unlimited = Arc::new(PerIp::new(0));
        let held: Vec<_> = (0..100).map(|_| unlimited.take(a).unwrap()).collect();
        assert_eq!(held.len(), 100);
        // A limit set by a reload applies to the next connection; the ones held stay.
        unlimited.set(50);
        assert!(unlimited.take(a).is_none());
        drop(held);
        assert!(unlimited.take(a).is_some());
    }
}
