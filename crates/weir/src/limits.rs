//! Per-address connection limits: `rtmp.max_connections_per_ip` counts a client address's
//! RTMP, RTMPS and HTTP connections together; one more is refused at accept with a log line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections held per client address.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    /// Most connections one address may hold; 0 for no limit.
    max: usize,
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
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more connection from `ip`, or `None` at the limit.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot { owner: None, ip });
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
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
        self.max
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
        assert!(unlimited.counts.lock().unwrap().is_empty());
    }
}
