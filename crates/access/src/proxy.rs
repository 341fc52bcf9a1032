//! PROXY protocol headers, versions 1 (text) and 2 (binary), as specified in HAProxy's
//! `doc/proxy-protocol.txt`.
//!
//! A TCP load balancer in front of the RTMP and HTTP listeners sends one such header before the
//! client's bytes, so the server learns the client's real address. Only read it from peers that
//! are configured as trusted load balancers: the spec forbids guessing whether a header is
//! present, since any client could otherwise claim any address.
//!
//! [`parse`] looks at the start of a connection's bytes and says whether they hold a complete
//! header (and how long it is), need more bytes, or are not a valid header. It never buffers or
//! reads: the caller keeps the bytes, calls again with more of them, and drops the header's `len`
//! bytes once it is complete. Once [`MAX_HEADER`] bytes are available the answer is never
//! [`Parsed::Incomplete`], so a caller never needs to buffer more than that.
//!
//! What is accepted:
//! - v1: `PROXY TCP4 <ipv4> <ipv4> <port> <port>\r\n`, the same with `TCP6` and IPv6 addresses,
//!   and `PROXY UNKNOWN\r\n` (anything between `UNKNOWN ` and the CRLF is ignored, as the spec
//!   requires). Fields are separated by exactly one space; IPv4 octets and ports are decimal
//!   without leading zeros or signs; IPv6 addresses are what [`std::net::Ipv6Addr`] parses
//!   (including the `::ffff:192.0.2.1` form that `inet_ntop` writes for IPv4-mapped addresses).
//!   The whole line, CRLF included, is at most 107 bytes.
//! - v2: the 12-byte signature, version 2 with the LOCAL or PROXY command, the address families
//!   UNSPEC, INET, INET6 and UNIX with the STREAM or DGRAM transport (or UNSPEC/UNSPEC), and an
//!   address block of at most `MAX_HEADER - 16` bytes. Bytes after the addresses (TLVs) are
//!   skipped without being interpreted. For LOCAL the family byte and the addresses are ignored.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// The longest header accepted, in bytes.
///
/// A v1 line is at most 107 bytes including its CRLF. A v2 header is 16 fixed bytes followed by
/// as many bytes as its length field announces; the protocol allows up to 65535, but we accept at
/// most 520: the largest address block (two 108-byte UNIX paths, 216 bytes) plus 304 bytes of TLVs,
/// enough for the ALPN, authority, unique-ID (at most 128 bytes) and SSL TLVs load balancers send.
/// A longer v2 header is refused with [`ProxyError::TooLong`] instead of being buffered.
pub const MAX_HEADER: usize = 536;

/// The start of every v1 header.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses and ports).
const V1_MAX_LINE: usize = 107;
/// The start of every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command byte, family/transport byte and the 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// The longest v2 address block (addresses and TLVs) accepted.
const V2_MAX_BLOCK: usize = MAX_HEADER - V2_FIXED_LEN;

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are the start of a header: read more and call [`parse`] again with all of
    /// them. Never returned for a buffer of [`MAX_HEADER`] bytes or more.
    Incomplete,
    /// A complete, valid header.
    Header {
        /// The header's length in bytes (at most the buffer's length); the connection's own
        /// bytes start right after it.
        len: usize,
        /// The client's address, or `None` when the connection's real peer address should be
        /// used instead: v1 `UNKNOWN`, v2 `LOCAL` (a health check from the load balancer
        /// itself), and the v2 `UNSPEC` and `UNIX` families.
        source: Option<SocketAddr>,
        /// The address the client connected to on the load balancer, `None` in the same cases
        /// as `source`.
        destination: Option<SocketAddr>,
    },
}

/// Why the bytes are not an acceptable PROXY header. The connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProxyError {
    /// The first bytes match neither the v1 (`PROXY `) nor the v2 signature: the peer does not
    /// speak the PROXY protocol (for instance a client connecting directly, not through the load
    /// balancer).
    #[error(
        "not a PROXY protocol header: the peer must send a PROXY v1 or v2 header first \
         (is it connecting directly instead of through the load balancer?)"
    )]
    NotProxy,
    /// The header starts like a PROXY header but breaks the protocol; the text says where.
    #[error("{0}")]
    Malformed(&'static str),
    /// The header is longer than we accept: a v1 line without a CRLF in its first 107 bytes,
    /// or a v2 header longer than [`MAX_HEADER`].
    #[error(
        "PROXY header too long: a v1 line must end with CRLF within 107 bytes, \
         a v2 header may be at most 536 bytes"
    )]
    TooLong,
}

/// Parses a PROXY protocol header (v1 or v2) at the start of `buf`.
///
/// Decides on the shortest prefix possible: as long as `buf` is a prefix of `PROXY ` or of the
/// v2 signature the answer is [`Parsed::Incomplete`], and as soon as it differs from both it is
/// [`ProxyError::NotProxy`]. Bytes after the header (the client's own protocol) are not looked at.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.starts_with(V2_SIGNATURE) {
        parse_v2(buf)
    } else if buf.starts_with(V1_SIGNATURE) {
        parse_v1(buf)
    } else if V2_SIGNATURE.starts_with(buf) || V1_SIGNATURE.starts_with(buf) {
        Ok(Parsed::Incomplete)
    } else {
        Err(ProxyError::NotProxy)
    }
}

/// Parses a v1 header; `buf` starts with `PROXY `.
fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = buf.get(..V1_MAX_LINE).unwrap_or(buf);
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= V1_MAX_LINE {
            Err(ProxyError::TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if window.get(end) == Some(&b'\n') {
        return Err(ProxyError::Malformed(
            "PROXY v1 header: line ends with LF without CR",
        ));
    }
    let len = end + 2;
    if len > V1_MAX_LINE {
        return Err(ProxyError::TooLong);
    }
    match buf.get(end + 1) {
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => {
            return Err(ProxyError::Malformed(
                "PROXY v1 header: CR not followed by LF",
            ))
        }
    }
    let line = buf.get(V1_SIGNATURE.len()..end).unwrap_or_default();
    let (source, destination) = parse_v1_line(line)?;
    Ok(Parsed::Header {
        len,
        source,
        destination,
    })
}

/// The addresses announced by a v1 line, given without its `PROXY ` and CRLF.
fn parse_v1_line(line: &[u8]) -> Result<(Option<SocketAddr>, Option<SocketAddr>), ProxyError> {
    if line == b"UNKNOWN" || line.starts_with(b"UNKNOWN ") {
        return Ok((None, None));
    }
    let line = std::str::from_utf8(line)
        .map_err(|_| ProxyError::Malformed("PROXY v1 header: not ASCII text"))?;
    let mut fields = line.split(' ');
    let parse_ip: fn(&str) -> Option<IpAddr> = match fields.next() {
        Some("TCP4") => parse_ipv4,
        Some("TCP6") => parse_ipv6,
        _ => return Err(ProxyError::Malformed(
            "PROXY v1 header: unknown protocol (expected TCP4, TCP6 or UNKNOWN after one space)",
        )),
    };
    let source_ip = next_field(&mut fields, parse_ip, "PROXY v1 header: bad source address")?;
    let destination_ip = next_field(
        &mut fields,
        parse_ip,
        "PROXY v1 header: bad destination address",
    )?;
    let source_port = next_field(&mut fields, parse_port, "PROXY v1 header: bad source port")?;
    let destination_port = next_field(
        &mut fields,
        parse_port,
        "PROXY v1 header: bad destination port",
    )?;
    if fields.next().is_some() {
        return Err(ProxyError::Malformed(
            "PROXY v1 header: unexpected text after the destination port",
        ));
    }
    Ok((
        Some(SocketAddr::new(source_ip, source_port)),
        Some(SocketAddr::new(destination_ip, destination_port)),
    ))
}

/// Parses the next space-separated field with `parse`, or fails with `error`.
fn next_field<'a, T>(
    fields: &mut impl Iterator<Item = &'a str>,
    parse: fn(&str) -> Option<T>,
    error: &'static str,
) -> Result<T, ProxyError> {
    fields
        .next()
        .and_then(parse)
        .ok_or(ProxyError::Malformed(error))
}

/// A decimal number from 0 to `max` without sign or leading zeros (as v1 requires).
fn parse_decimal(text: &str, max: u16) -> Option<u16> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero || text.len() > 5 {
        return None;
    }
    let value: u32 = text.parse().ok()?;
    u16::try_from(value).ok().filter(|&v| v <= max)
}

/// A v1 port: 0 to 65535 in decimal.
fn parse_port(text: &str) -> Option<u16> {
    parse_decimal(text, u16::MAX)
}

/// A v1 IPv4 address: exactly four dot-separated decimal octets without leading zeros.
fn parse_ipv4(text: &str) -> Option<IpAddr> {
    let mut parts = text.split('.');
    let mut octets = [0u8; 4];
    for octet in &mut octets {
        *octet = u8::try_from(parse_decimal(parts.next()?, 255)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::from(octets))
}

/// A v1 IPv6 address (only an IPv6 address: an IPv4 one is refused).
fn parse_ipv6(text: &str) -> Option<IpAddr> {
    text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The v2 command (low nibble of the 13th byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// A connection of the load balancer's own (health check): use the real peer address.
    Local,
    /// A relayed connection: the addresses are the client's.
    Proxy,
}

/// The v2 address family and transport (the 14th byte), among the valid combinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Unknown or unsupported: no usable addresses.
    Unspec,
    /// IPv4 addresses and ports (TCP or UDP).
    Inet,
    /// IPv6 addresses and ports (TCP or UDP).
    Inet6,
    /// Two 108-byte UNIX socket paths (stream or datagram).
    Unix,
}

impl Family {
    /// The bytes of addresses this family needs at the start of the address block.
    fn address_len(self) -> usize {
        match self {
            Family::Unspec => 0,
            Family::Inet => 2 * 4 + 2 * 2,
            Family::Inet6 => 2 * 16 + 2 * 2,
            Family::Unix => 2 * 108,
        }
    }
}

/// Parses a v2 header; `buf` starts with the v2 signature.
fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let rest = buf.get(V2_SIGNATURE.len()..).unwrap_or_default();
    let Some((&version_command, rest)) = rest.split_first() else {
        return Ok(Parsed::Incomplete);
    };
    let command = v2_command(version_command)?;
    let Some((&family_transport, rest)) = rest.split_first() else {
        return Ok(Parsed::Incomplete);
    };
    // LOCAL ignores the family entirely, as the spec says.
    let family = match command {
        Command::Local => None,
        Command::Proxy => Some(v2_family(family_transport)?),
    };
    let Some((length, rest)) = rest.split_first_chunk::<2>() else {
        return Ok(Parsed::Incomplete);
    };
    let block_len = usize::from(u16::from_be_bytes(*length));
    if block_len > V2_MAX_BLOCK {
        return Err(ProxyError::TooLong);
    }
    if family.is_some_and(|family| block_len < family.address_len()) {
        return Err(ProxyError::Malformed(
            "PROXY v2 header: address block too short for its address family",
        ));
    }
    let Some(block) = rest.get(..block_len) else {
        return Ok(Parsed::Incomplete);
    };
    let (source, destination) = match family {
        Some(family) => v2_addresses(family, block)?,
        None => (None, None),
    };
    Ok(Parsed::Header {
        len: V2_FIXED_LEN + block_len,
        source,
        destination,
    })
}

/// Checks the version (high nibble, must be 2) and decodes the command (low nibble).
fn v2_command(byte: u8) -> Result<Command, ProxyError> {
    if byte >> 4 != 2 {
        return Err(ProxyError::Malformed(
            "PROXY v2 header: unsupported protocol version (only version 2 exists)",
        ));
    }
    match byte & 0x0F {
        0 => Ok(Command::Local),
        1 => Ok(Command::Proxy),
        _ => Err(ProxyError::Malformed(
            "PROXY v2 header: unknown command (expected LOCAL or PROXY)",
        )),
    }
}

/// Decodes the family/transport byte; only the combinations the spec lists are valid.
fn v2_family(byte: u8) -> Result<Family, ProxyError> {
    match byte {
        0x00 => Ok(Family::Unspec),
        0x11 | 0x12 => Ok(Family::Inet),
        0x21 | 0x22 => Ok(Family::Inet6),
        0x31 | 0x32 => Ok(Family::Unix),
        _ => Err(ProxyError::Malformed(
            "PROXY v2 header: unknown address family or transport protocol",
        )),
    }
}

/// The source and destination addresses in a v2 address block (TLVs after them are ignored).
fn v2_addresses(
    family: Family,
    block: &[u8],
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), ProxyError> {
    let addresses = match family {
        Family::Unspec | Family::Unix => return Ok((None, None)),
        Family::Inet => ip_addresses::<4>(block),
        Family::Inet6 => ip_addresses::<16>(block),
    };
    let (source, destination) = addresses.ok_or(ProxyError::Malformed(
        "PROXY v2 header: address block too short for its address family",
    ))?;
    Ok((Some(source), Some(destination)))
}

/// Reads two `N`-byte IP addresses then two big-endian ports: source address, destination
/// address, source port, destination port.
fn ip_addresses<const N: usize>(block: &[u8]) -> Option<(SocketAddr, SocketAddr)>
where
    IpAddr: From<[u8; N]>,
{
    let (source, rest) = block.split_first_chunk::<N>()?;
    let (destination, rest) = rest.split_first_chunk::<N>()?;
    let (source_port, rest) = rest.split_first_chunk::<2>()?;
    let (destination_port, _) = rest.split_first_chunk::<2>()?;
    Some((
        SocketAddr::new(IpAddr::from(*source), u16::from_be_bytes(*source_port)),
        SocketAddr::new(
            IpAddr::from(*destination),
            u16::from_be_bytes(*destination_port),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    fn header(len: usize, source: &str, destination: &str) -> Parsed {
        Parsed::Header {
            len,
            source: Some(addr(source)),
            destination: Some(addr(destination)),
        }
    }

    fn no_address(len: usize) -> Parsed {
        Parsed::Header {
            len,
            source: None,
            destination: None,
        }
    }

    fn malformed(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(ProxyError::Malformed(_)))
    }

    /// A v1 line for two addresses of the same family.
    fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes()
    }

    /// A v2 header with the given command/version byte, family/transport byte and block.
    fn encode_v2_raw(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(version_command);
        out.push(family);
        let len = u16::try_from(block.len()).expect("test block fits");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// A v2 PROXY header for two addresses of the same family, followed by `tlvs`.
    fn encode_v2(source: SocketAddr, destination: SocketAddr, dgram: bool, tlvs: &[u8]) -> Vec<u8> {
        let mut block = Vec::new();
        let family = match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                block.extend_from_slice(&s.octets());
                block.extend_from_slice(&d.octets());
                0x10
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                block.extend_from_slice(&s.octets());
                block.extend_from_slice(&d.octets());
                0x20
            }
            _ => panic!("addresses of different families"),
        };
        block.extend_from_slice(&source.port().to_be_bytes());
        block.extend_from_slice(&destination.port().to_be_bytes());
        block.extend_from_slice(tlvs);
        encode_v2_raw(0x21, family | if dgram { 2 } else { 1 }, &block)
    }

    /// A TLV of `kind` holding `value`.
    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        let len = u16::try_from(value.len()).expect("test value fits");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn assert_prefixes_incomplete(header: &[u8]) {
        for end in 0..header.len() {
            assert_eq!(
                parse(&header[..end]),
                Ok(Parsed::Incomplete),
                "prefix of {end} bytes of {header:?}"
            );
        }
    }

    /// Golden headers of every kind, each with what it parses to.
    fn goldens() -> Vec<(Vec<u8>, Parsed)> {
        let ipv6_max = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let unknown_long = format!("PROXY UNKNOWN {ipv6_max} {ipv6_max} 65535 65535\r\n");
        let mut unix = vec![0u8; 216];
        unix[..9].copy_from_slice(b"/run/a.so");
        unix.extend(tlv(0x04, b""));
        vec![
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
                header(47, "192.168.0.1:56324", "192.168.0.11:443"),
            ),
            (
                b"PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n".to_vec(),
                header(44, "255.255.255.255:65535", "0.0.0.0:0"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 2001:db8::2 1935 443\r\n".to_vec(),
                header(45, "[2001:db8::1]:1935", "[2001:db8::2]:443"),
            ),
            (
                format!("PROXY TCP6 {ipv6_max} {ipv6_max} 65535 65535\r\n").into_bytes(),
                header(
                    104,
                    &format!("[{ipv6_max}]:65535"),
                    &format!("[{ipv6_max}]:65535"),
                ),
            ),
            (
                b"PROXY TCP6 ::ffff:192.0.2.1 ::1 80 8080\r\n".to_vec(),
                header(41, "[::ffff:192.0.2.1]:80", "[::1]:8080"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), no_address(15)),
            (unknown_long.into_bytes(), no_address(107)),
            (
                // Captured from HAProxy: TCP over IPv4, 172.19.0.1:42578 -> 172.19.0.3:80.
                vec![
                    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21,
                    0x11, 0x00, 0x0c, 0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03, 0xa6, 0x52,
                    0x00, 0x50,
                ],
                header(28, "172.19.0.1:42578", "172.19.0.3:80"),
            ),
            (
                encode_v2(
                    addr("[2001:db8::7]:50000"),
                    addr("[2001:db8::1]:1935"),
                    false,
                    &[tlv(0x01, b"h2"), tlv(0x05, &[7; 128]), tlv(0x04, b"")].concat(),
                ),
                header(
                    16 + 36 + 5 + 131 + 3,
                    "[2001:db8::7]:50000",
                    "[2001:db8::1]:1935",
                ),
            ),
            (encode_v2_raw(0x20, 0x00, &[]), no_address(16)),
            (
                // LOCAL with an address block anyway: skipped, not assumed empty.
                encode_v2_raw(0x20, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]),
                no_address(28),
            ),
            (encode_v2_raw(0x21, 0x31, &unix), no_address(16 + 216 + 3)),
            (
                encode_v2_raw(0x21, 0x00, &tlv(0x02, b"example.com")),
                no_address(30),
            ),
        ]
    }

    #[test]
    fn golden_headers_parse() {
        for (bytes, expected) in goldens() {
            assert_eq!(parse(&bytes), Ok(expected), "{bytes:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_golden_header_is_incomplete() {
        for (bytes, _) in goldens() {
            assert_prefixes_incomplete(&bytes);
        }
    }

    #[test]
    fn header_followed_by_rtmp_returns_the_header_length_only() {
        for (bytes, expected) in goldens() {
            let mut stream = bytes.clone();
            stream.push(0x03);
            stream.extend_from_slice(&[0xAB; 1536]);
            assert_eq!(parse(&stream), Ok(expected));
        }
        let mut stream = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec();
        stream.extend_from_slice(b"\x03\x00\x00\x00\r\nGET / HTTP/1.1\r\n");
        assert_eq!(parse(&stream), Ok(header(32, "1.2.3.4:1", "5.6.7.8:2")));
    }

    #[test]
    fn other_protocols_are_not_proxy() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(&[0x03]), Err(ProxyError::NotProxy));
        assert_eq!(parse(&[0x03, 0, 0, 0]), Err(ProxyError::NotProxy));
        assert_eq!(parse(&[0x16, 0x03, 0x01]), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXY\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"proxy "), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn signature_prefixes_are_incomplete() {
        for prefix in [
            &b""[..],
            b"P",
            b"PROX",
            b"PROXY",
            b"PROXY ",
            b"\r",
            b"\r\n\r\n\0",
        ] {
            assert_eq!(parse(prefix), Ok(Parsed::Incomplete), "{prefix:?}");
        }
        assert_eq!(parse(V2_SIGNATURE), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_field_errors_are_malformed() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY \r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.+4 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n",
        ];
        for case in cases {
            assert!(malformed(case), "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn v1_line_endings_are_strict() {
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"));
        // A bare LF is refused as soon as it is seen, without waiting for more bytes.
        assert!(malformed(b"PROXY UNKN\n"));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
            Ok(Parsed::Incomplete)
        );
    }

    #[test]
    fn v1_line_longer_than_107_bytes_is_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(105, b'f');
        // 105 bytes + CRLF = 107: the longest accepted line.
        let mut ok = line.clone();
        ok.extend_from_slice(b"\r\n");
        assert_eq!(parse(&ok), Ok(no_address(107)));
        // 108 bytes with the CRLF.
        let mut long = line.clone();
        long.extend_from_slice(b"f\r\n");
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        // The CR is the 107th byte: the LF cannot fit, whether or not it has arrived.
        assert_eq!(parse(&long[..107]), Err(ProxyError::TooLong));
        // No CRLF in the first 107 bytes.
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(200, b'1');
        assert_eq!(parse(&endless[..106]), Ok(Parsed::Incomplete));
        assert_eq!(parse(&endless[..107]), Err(ProxyError::TooLong));
        assert_eq!(parse(&endless), Err(ProxyError::TooLong));
    }

    #[test]
    fn v1_unknown_ignores_the_rest_of_the_line() {
        assert_eq!(parse(b"PROXY UNKNOWN \r\n"), Ok(no_address(16)));
        assert_eq!(
            parse(b"PROXY UNKNOWN 1.2.3.4 whatever \xff\r\nabc"),
            Ok(no_address(34))
        );
    }

    #[test]
    fn v2_version_and_command_are_checked_early() {
        for byte in [0x00, 0x01, 0x11, 0x31, 0xF1, 0x22, 0x2F] {
            let mut buf = V2_SIGNATURE.to_vec();
            buf.push(byte);
            assert!(malformed(&buf), "version/command {byte:#04x}");
        }
    }

    #[test]
    fn v2_family_and_transport_are_checked() {
        for byte in [
            0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x40, 0x41, 0xFF,
        ] {
            let buf = encode_v2_raw(0x21, byte, &[0; 216]);
            assert!(malformed(&buf), "family/transport {byte:#04x}");
            assert!(malformed(&buf[..14]), "early, family/transport {byte:#04x}");
        }
        // LOCAL ignores the family byte.
        assert_eq!(parse(&encode_v2_raw(0x20, 0xFF, &[])), Ok(no_address(16)));
        // UDP is accepted like TCP.
        let udp = encode_v2(addr("10.0.0.1:5000"), addr("10.0.0.2:6000"), true, &[]);
        assert_eq!(
            parse(&udp),
            Ok(header(28, "10.0.0.1:5000", "10.0.0.2:6000"))
        );
    }

    #[test]
    fn v2_short_address_blocks_are_malformed() {
        for (family, needed) in [
            (0x11u8, 12usize),
            (0x12, 12),
            (0x21, 36),
            (0x22, 36),
            (0x31, 216),
            (0x32, 216),
        ] {
            let short = encode_v2_raw(0x21, family, &vec![0; needed - 1]);
            assert!(malformed(&short), "family {family:#04x}");
            // Known from the length field alone.
            assert!(malformed(&short[..16]), "early, family {family:#04x}");
            let exact = encode_v2_raw(0x21, family, &vec![0; needed]);
            assert!(matches!(parse(&exact), Ok(Parsed::Header { len, .. }) if len == 16 + needed));
        }
        // LOCAL takes any block length.
        assert_eq!(
            parse(&encode_v2_raw(0x20, 0x11, &[0; 3])),
            Ok(no_address(19))
        );
    }

    #[test]
    fn v2_length_is_capped() {
        let largest = encode_v2_raw(0x21, 0x11, &[0; MAX_HEADER - 16]);
        assert_eq!(largest.len(), MAX_HEADER);
        assert!(matches!(
            parse(&largest),
            Ok(Parsed::Header {
                len: MAX_HEADER,
                ..
            })
        ));
        let too_long = encode_v2_raw(0x21, 0x11, &[0; MAX_HEADER - 15]);
        assert_eq!(parse(&too_long), Err(ProxyError::TooLong));
        assert_eq!(parse(&too_long[..16]), Err(ProxyError::TooLong));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(parse(&huge), Err(ProxyError::TooLong));
    }

    #[test]
    fn error_messages_name_the_protocol() {
        let errors = [
            parse(b"GET /"),
            parse(b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n"),
            parse(&[b"PROXY ".as_slice(), &[b'x'; 200]].concat()),
        ];
        for error in errors {
            let text = error.expect_err("an error").to_string();
            assert!(text.contains("PROXY"), "{text}");
        }
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n")
                .expect_err("bad destination")
                .to_string(),
            "PROXY v1 header: bad destination address"
        );
    }

    /// Pairs of addresses of one family, IPv6 ones often with runs of zeros.
    fn address_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        let v4 = (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)));
        let segment = prop_oneof![Just(0u16), Just(0xFFFF), any::<u16>()];
        let v6 = (prop::array::uniform8(segment), any::<u16>())
            .prop_map(|(segments, port)| SocketAddr::new(IpAddr::from(segments), port));
        prop_oneof![(v4.clone(), v4), (v6.clone(), v6)]
    }

    /// TLV bytes that fit in a v2 header after the largest IP address block.
    fn tlv_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..=MAX_HEADER - 16 - 36)
    }

    /// A valid header (v1 or v2) with what it parses to.
    fn valid_header() -> impl Strategy<Value = (Vec<u8>, Parsed)> {
        (address_pair(), any::<bool>(), any::<bool>(), tlv_bytes()).prop_map(
            |((source, destination), v2, dgram, tlvs)| {
                let bytes = if v2 {
                    encode_v2(source, destination, dgram, &tlvs)
                } else {
                    encode_v1(source, destination)
                };
                let parsed = Parsed::Header {
                    len: bytes.len(),
                    source: Some(source),
                    destination: Some(destination),
                };
                (bytes, parsed)
            },
        )
    }

    /// Arbitrary bytes, often starting with one of the signatures.
    fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
        let tail = prop::collection::vec(any::<u8>(), 0..700);
        let v1_text = "[ -~\r\n]{0,120}".prop_map(String::into_bytes);
        prop_oneof![
            tail.clone(),
            tail.clone()
                .prop_map(|t| [V2_SIGNATURE.as_slice(), &t].concat()),
            tail.prop_map(|t| [V1_SIGNATURE, &t].concat()),
            v1_text.prop_map(|t| [V1_SIGNATURE, &t].concat()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in arbitrary_input()) {
            match parse(&buf) {
                Ok(Parsed::Header { len, .. }) => {
                    prop_assert!(len <= buf.len());
                    prop_assert!(len <= MAX_HEADER);
                    prop_assert_eq!(parse(&buf[..len]), parse(&buf));
                }
                Ok(Parsed::Incomplete) => prop_assert!(buf.len() < MAX_HEADER),
                Err(_) => {}
            }
        }

        #[test]
        fn addresses_round_trip(
            (bytes, expected) in valid_header(),
            tail in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assert_eq!(parse(&bytes), Ok(expected));
            let stream = [bytes.as_slice(), &tail].concat();
            prop_assert_eq!(parse(&stream), Ok(expected));
        }

        #[test]
        fn split_headers_are_incomplete((bytes, expected) in valid_header(), at in any::<prop::sample::Index>()) {
            let at = at.index(bytes.len());
            prop_assert_eq!(parse(&bytes[..at]), Ok(Parsed::Incomplete));
            prop_assert_eq!(parse(&bytes), Ok(expected));
        }
    }
}
