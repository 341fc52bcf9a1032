//! Address ranges for IP rules: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
//!
//! An IPv4 client that reaches a dual-stack listener shows up as `::ffff:a.b.c.d`; it matches
//! IPv4 ranges as the plain IPv4 address it is.

use std::net::IpAddr;

/// A network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` or a bare address (the whole address).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_and_matches() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.1.2".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.2.3".parse().unwrap()),
            "v4-mapped"
        );
        let one = Cidr::parse("192.168.1.7").unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "", "10.0.0.0/-1"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn v4_membership_is_prefix_equality(net: u32, ip: u32, prefix in 0u8..=32) {
            let cidr = Cidr::parse(&format!("{}/{prefix}", Ipv4Addr::from(net))).unwrap();
            let same = prefix == 0 || (net ^ ip) >> (32 - u32::from(prefix)) == 0;
            prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from(ip))), same);
            // The network's own address is always inside.
            prop_assert!(cidr.contains(IpAddr::V4(Ipv4Addr::from(net))));
        }

        #[test]
        fn v6_membership_is_prefix_equality(net: u128, ip: u128, prefix in 0u8..=128) {
            let cidr = Cidr::parse(&format!("{}/{prefix}", Ipv6Addr::from(net))).unwrap();
            let same = prefix == 0 || (net ^ ip) >> (128 - u32::from(prefix)) == 0;
            let ip = Ipv6Addr::from(ip);
            // v4-mapped addresses are compared as IPv4 (and never match an IPv6 range).
            prop_assume!(ip.to_ipv4_mapped().is_none());
            prop_assert_eq!(cidr.contains(IpAddr::V6(ip)), same);
        }
    }
}
