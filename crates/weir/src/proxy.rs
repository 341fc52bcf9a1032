//! Clients behind proxies: whose word on the client's address is taken (`proxy.trusted`), the
//! PROXY protocol header a trusted TCP load balancer puts first on a connection
//! (`rtmp.proxy_protocol`, `http.proxy_protocol`), and `X-Forwarded-For` from a trusted HTTP
//! reverse proxy. The parsers are weir-access's (sans-IO, fuzzed); this is the socket side.
//!
//! The address found is the one every rule sees: IP rules, per-address limits, the policy and
//! webhooks, the registry and the logs. A connection from a trusted proxy that carries no
//! PROXY header is not counted against `rtmp.max_connections_per_ip` (it carries many
//! clients); one that does is counted under the client's address once its header is read.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use weir_access::proxy::{parse, Parsed, MAX_HEADER};

use crate::auth::cidr::Cidr;
use crate::config::Config;

/// The trusted proxies and which listeners expect PROXY headers from them (replaced as a
/// whole by a reload).
#[derive(Debug, Default)]
pub(crate) struct Proxies {
    rules: std::sync::RwLock<Rules>,
}

#[derive(Debug, Default, Clone)]
struct Rules {
    trusted: Vec<Cidr>,
    rtmp_header: bool,
    http_header: bool,
}

impl Proxies {
    /// The `[proxy]` rules of `config` (validated there).
    pub(crate) fn new(config: &Config) -> Proxies {
        let proxies = Proxies::default();
        proxies.update(config);
        proxies
    }

    /// Takes the `[proxy]` rules of a reloaded `config`.
    pub(crate) fn update(&self, config: &Config) {
        let rules = Rules {
            trusted: config
                .proxy
                .trusted
                .iter()
                .filter_map(|c| Cidr::parse(c))
                .collect(),
            rtmp_header: config.rtmp.proxy_protocol,
            http_header: config.http.proxy_protocol,
        };
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
    }

    fn rules(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether RTMP and RTMPS connections from trusted proxies start with a PROXY header.
    pub(crate) fn rtmp_header(&self) -> bool {
        self.rules().rtmp_header
    }

    /// Whether HTTP connections from trusted proxies start with a PROXY header.
    pub(crate) fn http_header(&self) -> bool {
        self.rules().http_header
    }

    /// Whether `ip` is a trusted proxy.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.rules().trusted.iter().any(|c| c.contains(ip))
    }

    /// The client of an HTTP request from `peer` with these `X-Forwarded-For` values: the
    /// first untrusted hop from the right (port 0 when it is not the TCP peer).
    pub(crate) fn http_client(&self, peer: SocketAddr, forwarded: &[&str]) -> SocketAddr {
        if forwarded.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let ip = weir_access::forwarded::client_ip(peer.ip(), forwarded, |ip| self.trusts(ip));
        if ip == peer.ip() {
            peer
        } else {
            SocketAddr::new(ip, 0)
        }
    }
}

/// Reads the PROXY protocol header (v1 or v2) at the start of `socket`, consuming exactly its
/// bytes: the client's address, or `None` for a LOCAL header (the balancer's own health
/// check) or an unknown address family. Not a PROXY header, or a malformed one: an error that
/// says so. The caller bounds the wait.
pub(crate) async fn read_header(socket: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    let mut buf = [0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        let n = socket.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match parse(&buf[..n]) {
            Ok(Parsed::Header { len, source, .. }) => {
                let mut header = [0u8; MAX_HEADER];
                socket.read_exact(&mut header[..len]).await?;
                return Ok(source);
            }
            Ok(Parsed::Incomplete) => {
                // The rest of a header split over segments: peek returns at once while the
                // bytes it has are unread, so wait a little before looking again.
                if n == seen {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen = n;
            }
            Err(err) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected a PROXY protocol header from this trusted proxy: {err}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(trusted: &[&str]) -> Proxies {
        let mut config = Config::default();
        config.proxy.trusted = trusted.iter().map(|s| (*s).to_owned()).collect();
        Proxies::new(&config)
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let proxies = proxies(&["10.0.0.0/8"]);
        let via_proxy: SocketAddr = "10.1.1.1:4000".parse().unwrap();
        let direct: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        assert_eq!(
            proxies.http_client(via_proxy, &["198.51.100.7, 10.2.2.2"]),
            "198.51.100.7:0".parse().unwrap()
        );
        assert_eq!(proxies.http_client(direct, &["198.51.100.7"]), direct);
        assert_eq!(proxies.http_client(via_proxy, &[]), via_proxy);
    }

    #[tokio::test]
    async fn a_header_is_consumed_exactly_and_garbage_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let send = |bytes: &'static [u8]| async move {
            use tokio::io::AsyncWriteExt;
            let mut client = TcpStream::connect(addr).await.unwrap();
            // Split in two writes: the header may arrive in pieces.
            client.write_all(&bytes[..10]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(&bytes[10..]).await.unwrap();
            client
        };
        let _client = send(b"PROXY TCP4 198.51.100.7 192.0.2.1 5000 1935\r\n\x03rest").await;
        let (mut socket, _) = listener.accept().await.unwrap();
        let source = read_header(&mut socket).await.unwrap();
        assert_eq!(source, Some("198.51.100.7:5000".parse().unwrap()));
        let mut next = [0u8; 5];
        socket.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"\x03rest");

        let _client = send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (mut socket, _) = listener.accept().await.unwrap();
        let err = read_header(&mut socket).await.unwrap_err();
        assert!(err.to_string().contains("PROXY protocol header"), "{err}");
    }
}
