//! The client address behind trusted reverse proxies, from `X-Forwarded-For`.
//!
//! Each proxy appends the address it received the request from to the header, so the entries
//! read right to left are the hops towards the client, and only the ones added by proxies we
//! trust can be believed: anything to the left of the first untrusted hop was written by that
//! hop (possibly the client itself) and may be forged. [`client_ip`] walks the entries that way.
//!
//! Entries are comma-separated, possibly over several header lines (taken in order), with
//! optional spaces or tabs around them. An entry is an IPv4 address, optionally with a port
//! (`192.0.2.1:5678`), an IPv6 address (`2001:db8::1`), or a bracketed IPv6 address, optionally
//! with a port (`[2001:db8::1]:443`). Empty entries are skipped, as HTTP list syntax allows;
//! anything else (`unknown`, host names, IPv6 zone ids, bad ports) is malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most entries (empty ones included) looked at, counted from the right. No real chain of
/// trusted proxies is this long: if the walk gets this far it stops and returns the hop it has
/// reached, whatever the header holds further left. This bounds the work per request whatever
/// the client sends.
pub const MAX_ENTRIES: usize = 64;

/// The client address: walks the X-Forwarded-For entries right to left starting from the TCP
/// peer; while the current hop is trusted, the next entry to the left becomes the hop; returns
/// the first untrusted hop (or the leftmost entry if all are trusted). If `peer` is not trusted,
/// the header is ignored and `peer` is returned. Malformed entries stop the walk (the last good
/// hop is returned).
///
/// `header_values` are the values of every `X-Forwarded-For` line of the request, in order; they
/// are read as one list. At most [`MAX_ENTRIES`] entries are looked at (see there). Ports in the
/// entries are checked but dropped.
pub fn client_ip(peer: IpAddr, header_values: &[&str], trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let entries_right_to_left = header_values
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(','))
        .take(MAX_ENTRIES);
    let mut hop = peer;
    for entry in entries_right_to_left {
        if !trusted(hop) {
            return hop;
        }
        let entry = entry.trim_matches(is_whitespace);
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry) {
            Some(ip) => hop = ip,
            None => return hop,
        }
    }
    hop
}

/// HTTP optional whitespace: spaces and tabs.
fn is_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// One trimmed, non-empty entry: an address with an optional port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Some(bracketed) = entry.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']')?;
        let ip: Ipv6Addr = ip.parse().ok()?;
        if !after.is_empty() {
            valid_port(after.strip_prefix(':')?).then_some(())?;
        }
        return Some(IpAddr::V6(ip));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    let (ip, port) = entry.split_once(':')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    valid_port(port).then_some(IpAddr::V4(ip))
}

/// A port: 1 to 5 decimal digits with a value of at most 65535.
fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= u32::from(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    /// Trusts the private networks 10/8 and fd00::/8, like a typical deployment.
    fn private(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.octets()[0] == 10,
            IpAddr::V6(v6) => v6.octets()[0] == 0xfd,
        }
    }

    const PROXY: &str = "10.0.0.1";

    fn client(values: &[&str]) -> IpAddr {
        client_ip(ip(PROXY), values, private)
    }

    #[test]
    fn untrusted_peer_ignores_the_header() {
        let peer = ip("198.51.100.9");
        assert_eq!(client_ip(peer, &["203.0.113.7"], private), peer);
        assert_eq!(client_ip(peer, &["203.0.113.7"], |_| false), peer);
    }

    #[test]
    fn one_trusted_proxy() {
        assert_eq!(client(&["203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(client(&[" 203.0.113.7 "]), ip("203.0.113.7"));
    }

    #[test]
    fn chain_of_trusted_proxies() {
        assert_eq!(
            client(&["203.0.113.7, 10.0.0.3, 10.0.0.2"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn entries_left_of_the_first_untrusted_hop_are_ignored() {
        // The client wrote "1.1.1.1" itself; our proxy appended the address it saw.
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        assert_eq!(client(&["10.9.9.9, 203.0.113.7"]), ip("203.0.113.7"));
    }

    #[test]
    fn several_header_lines_form_one_list() {
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.7", "10.0.0.3", "10.0.0.2"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(&["203.0.113.7", "10.0.0.3, 10.0.0.2"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn all_trusted_returns_the_leftmost_entry() {
        assert_eq!(client(&["10.0.0.9, 10.0.0.3", "10.0.0.2"]), ip("10.0.0.9"));
    }

    #[test]
    fn entries_with_ports_and_ipv6() {
        assert_eq!(client(&["203.0.113.7:5678"]), ip("203.0.113.7"));
        assert_eq!(client(&["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(client(&["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(client(&["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(client(&["::ffff:192.0.2.1"]), ip("::ffff:192.0.2.1"));
        assert_eq!(
            client(&["2001:db8::1, [fd00::2]:80,\t10.0.0.5:1"]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn empty_entries_and_lines_are_skipped() {
        assert_eq!(client(&[]), ip(PROXY));
        assert_eq!(client(&[""]), ip(PROXY));
        assert_eq!(client(&[" , ,"]), ip(PROXY));
        assert_eq!(client(&["203.0.113.7,, ,", ""]), ip("203.0.113.7"));
    }

    #[test]
    fn malformed_entries_stop_the_walk_at_the_last_good_hop() {
        assert_eq!(client(&["unknown"]), ip(PROXY));
        assert_eq!(client(&["203.0.113.7, unknown, 10.0.0.2"]), ip("10.0.0.2"));
        let garbage = [
            "example.com",
            "_hidden",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:+80",
            "1.2.3.4:80:80",
            "1.2.3.4 5.6.7.8",
            "[2001:db8::1",
            "2001:db8::1]:80",
            "[2001:db8::1]80",
            "[2001:db8::1]:",
            "[1.2.3.4]:80",
            "fe80::1%eth0",
            "\"1.2.3.4\"",
        ];
        for entry in garbage {
            assert_eq!(client(&[entry]), ip(PROXY), "{entry}");
            let line = format!("203.0.113.7, {entry}, 10.0.0.2");
            assert_eq!(client(&[line.as_str()]), ip("10.0.0.2"), "{entry}");
        }
    }

    #[test]
    fn at_most_max_entries_are_looked_at() {
        let line = vec!["10.1.1.1"; 100]
            .into_iter()
            .chain(std::iter::once("10.2.2.2"))
            .chain(vec!["10.3.3.3"; MAX_ENTRIES - 1])
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(client(&[line.as_str()]), ip("10.2.2.2"));
        // Empty entries count too.
        let empties = format!("203.0.113.7{}", ",".repeat(MAX_ENTRIES));
        assert_eq!(client(&[empties.as_str()]), ip(PROXY));
    }

    /// Header values mixing addresses, ports, separators and noise.
    fn header_values() -> impl Strategy<Value = Vec<String>> {
        let entry = prop_oneof![
            any::<IpAddr>().prop_map(|ip| ip.to_string()),
            (any::<std::net::Ipv4Addr>(), any::<u16>()).prop_map(|(ip, p)| format!("{ip}:{p}")),
            (any::<std::net::Ipv6Addr>(), any::<u16>()).prop_map(|(ip, p)| format!("[{ip}]:{p}")),
            Just("10.0.0.7".to_string()),
            Just("unknown".to_string()),
            "[ -~\t]{0,12}",
            any::<String>(),
        ];
        let line = prop::collection::vec(entry, 0..8).prop_map(|entries| entries.join(", "));
        prop::collection::vec(line, 0..4)
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(
            peer in any::<IpAddr>(),
            values in header_values(),
            raw in any::<String>(),
            trusted in prop::collection::vec(any::<IpAddr>(), 0..4),
        ) {
            let mut values: Vec<&str> = values.iter().map(String::as_str).collect();
            values.push(&raw);
            let trust = |ip: IpAddr| private(ip) || trusted.contains(&ip) || ip == peer;
            let found = client_ip(peer, &values, trust);
            // The answer is the peer or an address written in the header.
            let mut written = values
                .iter()
                .flat_map(|value| value.split(','))
                .filter_map(|entry| parse_entry(entry.trim_matches(is_whitespace)));
            prop_assert!(found == peer || written.any(|ip| ip == found));
        }

        #[test]
        fn untrusted_peer_returns_itself(peer in any::<IpAddr>(), values in header_values()) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            prop_assert_eq!(client_ip(peer, &values, |ip| ip != peer), peer);
            prop_assert_eq!(client_ip(peer, &values, |_| false), peer);
        }

        #[test]
        fn all_trusted_returns_the_leftmost(
            peer in any::<IpAddr>(),
            hops in prop::collection::vec(any::<IpAddr>(), 1..MAX_ENTRIES),
        ) {
            let line = hops.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ,");
            prop_assert_eq!(client_ip(peer, &[line.as_str()], |_| true), hops[0]);
        }
    }
}
