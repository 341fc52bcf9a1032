//! Parses arbitrary bytes as a PROXY protocol header and checks what a listener relies on: a
//! header's length lies within the input, its own bytes parse to the same header and every
//! shorter prefix of them asks for more bytes, and a full buffer is never incomplete. Then reads
//! the bytes, as lossy UTF-8 lines, as `X-Forwarded-For` values behind trusted proxies.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use weir_access::forwarded;
use weir_access::proxy::{self, Parsed};

fuzz_target!(|data: &[u8]| {
    check_proxy(data);
    check_forwarded(data);
});

fn check_proxy(data: &[u8]) {
    let result = proxy::parse(data);
    match result {
        Ok(Parsed::Header { len, .. }) => {
            assert!(len <= data.len());
            assert!(len <= proxy::MAX_HEADER);
            assert_eq!(proxy::parse(&data[..len]), result);
            assert_eq!(proxy::parse(&data[..len - 1]), Ok(Parsed::Incomplete));
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < proxy::MAX_HEADER),
        Err(_) => {}
    }
}

fn check_forwarded(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let trusted = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.octets()[0] == 0xfd,
    };
    let client = forwarded::client_ip(peer, &values, trusted);
    if client != peer {
        assert!(text.contains(&client.to_string()) || client.is_ipv6());
    }
    // An untrusted peer is always its own client.
    let stranger = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    assert_eq!(forwarded::client_ip(stranger, &values, trusted), stranger);
}
