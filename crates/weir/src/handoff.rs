//! Letting a shared port go without resetting a connection.
//!
//! A deploy starts the new weir on the same ports (SO_REUSEPORT: the kernel spreads new
//! connections over every listener of the port's group) and drains the old one. When a
//! listener closes, the kernel resets the connections waiting in its accept queue and the
//! handshakes on their way to it (unless `net.ipv4.tcp_migrate_req` is set, which it is not
//! by default): a client connecting at that instant is refused, though another weir listens.
//!
//! So before its listeners close, a draining weir steers the port's new connections to
//! another listener of the group — a one-instruction classic BPF program attached to the
//! group (`SO_ATTACH_REUSEPORT_CBPF`, no privilege needed) that names a listener by its place
//! in the group — then keeps accepting for [`GRACE`] while the handshakes already on their way
//! here arrive, and only then closes. Those late connections are served and drained like the
//! others.
//!
//! A process cannot read its listener's place in the group, so it finds it out by
//! connecting to its own port: with "take place 0" attached, a probe that lands here means
//! this listener is place 0, and "take place 1" is tried (a place the group does not have
//! falls back to the kernel's spreading, so a probe landing here again means nobody else
//! listens: the program is taken off and nothing waits). A probe is known by its source
//! address: the accept loops hand every new connection to [`Probes::claim`] first and drop a
//! probe unseen. A probe that lands on the other listener is closed at once (that weir logs a
//! connection that sent nothing). The steering stays on the group after this process has
//! gone: a weir started later on the port then takes its new connections (place 1) or
//! leaves them to the one that was there (place 0) until that one drains in turn.
//!
//! Linux only; elsewhere listeners close as before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long a listener steered away keeps accepting before it closes: a handshake that
/// reached it before the steering completes within the client's round trip, so 1 s covers
/// round trips up to a second (one whose SYN-ACK was lost and is sent again after 1 s may
/// still be reset; a longer wait would hold every deploy up).
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// How long a probe that connected waits to be seen by this process's accept loop before it
/// is taken to have landed on another listener.
const PROBE_WAIT: Duration = Duration::from_millis(250);

/// Our own probe connections in flight, by source address.
#[derive(Default)]
pub(crate) struct Probes {
    /// How many are in flight: the accept loops look no further while it is 0.
    active: AtomicUsize,
    waiting: Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>,
    /// Set once the ports were handed over (a drain and the shutdown after it do it once).
    pub(crate) handed_over: tokio::sync::OnceCell<()>,
}

impl Probes {
    /// Whether the connection just accepted from `peer` is one of our probes (the caller then
    /// drops it). One atomic load while no probe is in flight.
    pub(crate) fn claim(&self, peer: SocketAddr) -> bool {
        if self.active.load(Ordering::Acquire) == 0 {
            return false;
        }
        let seen = self.lock().remove(&peer);
        match seen {
            Some(seen) => {
                let _ = seen.send(());
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expect(&self, from: SocketAddr) -> oneshot::Receiver<()> {
        let (seen, wait) = oneshot::channel();
        self.lock().insert(from, seen);
        self.active.fetch_add(1, Ordering::AcqRel);
        wait
    }

    fn forget(&self, from: SocketAddr) {
        self.lock().remove(&from);
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`steer_away`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Steered {
    /// Another listener of the port takes its new connections from now on.
    Away,
    /// Nobody else listens on the port (or steering is not available): nothing changed.
    Alone,
}

/// Steers the new connections of `listener`'s port to another listener of its SO_REUSEPORT
/// group, if there is one. `probes` must be the set the listener's accept loop claims from,
/// and that loop must be running.
pub(crate) async fn steer_away(listener: &TcpListener, probes: &Probes) -> Steered {
    #[cfg(target_os = "linux")]
    {
        match linux::steer_away(listener, probes).await {
            Ok(steered) => steered,
            Err(err) => {
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    "cannot steer new connections on {addr} to the next weir before closing: \
                     {err}; a client connecting while this listener closes may be reset"
                );
                linux::restore(listener);
                Steered::Alone
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (listener, probes);
        Steered::Alone
    }
}

/// Connects to `target` from a fresh port and tells whether this process's accept loop saw
/// the connection.
async fn lands_here(target: SocketAddr, probes: &Probes) -> std::io::Result<bool> {
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    let from = SocketAddr::new(target.ip(), 0);
    socket.bind(from)?;
    let from = socket.local_addr()?;
    let seen = probes.expect(from);
    let outcome = async {
        let stream = tokio::time::timeout(PROBE_WAIT, socket.connect(target))
            .await
            .map_err(|_| std::io::Error::other("the probe connection timed out"))??;
        let here = tokio::time::timeout(PROBE_WAIT, seen).await.is_ok();
        drop(stream);
        Ok(here)
    }
    .await;
    probes.forget(from);
    outcome
}

/// Where a probe of `listener` connects: its address, with loopback for a wildcard.
fn probe_target(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    let mut target = listener.local_addr()?;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(target)
}

#[cfg(target_os = "linux")]
mod linux {
    #![allow(unsafe_code)] // two setsockopt calls libc, socket2 and rustix do not wrap

    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

    use super::{lands_here, probe_target, Probes, Steered};
    use tokio::net::TcpListener;

    /// `BPF_RET | BPF_K`: return the constant.
    const BPF_RET_K: u16 = 0x06;

    pub(super) async fn steer_away(
        listener: &TcpListener,
        probes: &Probes,
    ) -> std::io::Result<Steered> {
        let target = probe_target(listener)?;
        for place in [0, 1] {
            attach(listener.as_fd(), place)?;
            if !lands_here(target, probes).await? {
                return Ok(Steered::Away);
            }
        }
        restore(listener);
        Ok(Steered::Alone)
    }

    /// Takes the steering program off the group (the kernel spreads connections again).
    /// ENOENT (no program attached) is fine.
    pub(super) fn restore(listener: &TcpListener) {
        let _ = set_option(
            listener.as_fd(),
            libc::SO_DETACH_REUSEPORT_BPF,
            &0 as &libc::c_int,
        );
    }

    /// Attaches "every new connection goes to the listener at `place`" to the group.
    fn attach(fd: BorrowedFd<'_>, place: u32) -> std::io::Result<()> {
        let mut filter = [libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: place,
        }];
        let program = libc::sock_fprog {
            len: 1,
            filter: filter.as_mut_ptr(),
        };
        // `program` points at `filter`: both live until the call returns (the kernel copies
        // the program).
        set_option(fd, libc::SO_ATTACH_REUSEPORT_CBPF, &program)
    }

    /// `setsockopt(fd, SOL_SOCKET, name, value)`.
    fn set_option<T>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> std::io::Result<()> {
        // SAFETY: `fd` is borrowed from a socket alive for the call; `value` is a live
        // reference whose size is passed with it, read by the kernel within the call only.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// A listener of a shared port with its accept loop, counting connections that are not
    /// its own probes, as a weir's loop does.
    struct Member {
        listener: Arc<TcpListener>,
        probes: Arc<Probes>,
        accepted: Arc<AtomicUsize>,
    }

    fn member(port: u16) -> Member {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listener = Arc::new(crate::server::listen(addr).expect("bind the shared port"));
        let probes = Arc::new(Probes::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        tokio::spawn({
            let (listener, probes, accepted) = (
                Arc::clone(&listener),
                Arc::clone(&probes),
                Arc::clone(&accepted),
            );
            async move {
                while let Ok((socket, peer)) = listener.accept().await {
                    if !probes.claim(peer) {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    drop(socket);
                }
            }
        });
        Member {
            listener,
            probes,
            accepted,
        }
    }

    /// A second listener on `old`'s port. Binding it checks whether someone listens there
    /// (one connection, counted by one of the two): waited for, so that counts start even.
    async fn joiner(old: &Member) -> Member {
        let new = member(port(old));
        for _ in 0..200 {
            if old.accepted.load(Ordering::SeqCst) + new.accepted.load(Ordering::SeqCst) == 1 {
                return new;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the bind-time check's connection was not accepted");
    }

    fn port(member: &Member) -> u16 {
        member.listener.local_addr().unwrap().port()
    }

    /// Opens `n` connections to `port` and waits until `members` have accepted them all.
    async fn connect(port: u16, n: usize, members: &[&Member]) {
        let before: usize = members
            .iter()
            .map(|m| m.accepted.load(Ordering::SeqCst))
            .sum();
        for _ in 0..n {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
        }
        for _ in 0..200 {
            let now: usize = members
                .iter()
                .map(|m| m.accepted.load(Ordering::SeqCst))
                .sum();
            if now == before + n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the connections were not all accepted");
    }

    #[tokio::test]
    async fn a_listener_alone_keeps_its_connections() {
        let alone = member(0);
        assert_eq!(
            steer_away(&alone.listener, &alone.probes).await,
            Steered::Alone
        );
        connect(port(&alone), 20, &[&alone]).await;
        assert_eq!(alone.accepted.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn the_first_listener_steers_every_new_connection_to_the_second() {
        let old = member(0);
        let new = joiner(&old).await;
        // Without steering the kernel spreads them over both.
        connect(port(&old), 200, &[&old, &new]).await;
        assert!(old.accepted.load(Ordering::SeqCst) > 0);
        assert!(new.accepted.load(Ordering::SeqCst) > 0);
        let (was_old, was_new) = (
            old.accepted.load(Ordering::SeqCst),
            new.accepted.load(Ordering::SeqCst),
        );
        assert_eq!(steer_away(&old.listener, &old.probes).await, Steered::Away);
        connect(port(&old), 200, &[&old, &new]).await;
        assert_eq!(old.accepted.load(Ordering::SeqCst), was_old);
        // The probe that landed on the new listener counts there, as on another process.
        assert_eq!(new.accepted.load(Ordering::SeqCst), was_new + 200 + 1);
    }

    #[tokio::test]
    async fn the_second_listener_steers_every_new_connection_to_the_first() {
        let old = member(0);
        let new = joiner(&old).await;
        assert_eq!(steer_away(&new.listener, &new.probes).await, Steered::Away);
        let (was_old, was_new) = (
            old.accepted.load(Ordering::SeqCst),
            new.accepted.load(Ordering::SeqCst),
        );
        connect(port(&old), 200, &[&old, &new]).await;
        assert_eq!(new.accepted.load(Ordering::SeqCst), was_new);
        assert_eq!(old.accepted.load(Ordering::SeqCst), was_old + 200);
    }
}
