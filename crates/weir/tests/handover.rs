//! A deploy with no refused connection: weir A serves, weir B starts on the same ports
//! (SO_REUSEPORT), A is drained with SIGTERM (it steers the ports to B first) and exits, and clients connecting every millisecond
//! all along are never refused: each attempt gets the RTMP handshake from A or B. B takes over
//! the admin port once A has let it go.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::ChildGuard;
use common::{free_port, wait_for_port, TestDir};

/// One attempt: TCP connect, C0+C1, and S0 back. `Err` says how it was refused.
fn attempt(addr: SocketAddr) -> Result<(), String> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut hello = vec![3u8];
    hello.extend_from_slice(&[0u8; 1536]);
    socket
        .write_all(&hello)
        .map_err(|e| format!("write C0C1: {e}"))?;
    let mut s0 = [0u8; 1];
    match socket.read(&mut s0) {
        Ok(1) if s0[0] == 3 => Ok(()),
        Ok(n) => Err(format!("read S0: {n} bytes {s0:?}")),
        Err(e) => Err(format!("read S0: {e}")),
    }
}

fn weir(name: &str, rtmp: u16, http: u16, api: u16, dir: &std::path::Path) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args([
        "--rtmp-addr",
        &format!("127.0.0.1:{rtmp}"),
        "--http-addr",
        &format!("127.0.0.1:{http}"),
        "--api-addr",
        &format!("127.0.0.1:{api}"),
    ]);
    ChildGuard::spawn(name, cmd, dir)
}

/// GET /api/v1/server on `addr`: whether it answered 200.
fn admin_answers(addr: SocketAddr) -> bool {
    let Ok(mut socket) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = socket.write_all(b"GET /api/v1/server HTTP/1.0\r\nHost: t\r\n\r\n");
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

#[test]
fn a_second_weir_takes_over_the_ports_while_the_first_drains() {
    let dir = TestDir::new("handover");
    let (rtmp, http, api) = (free_port(), free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{rtmp}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{api}").parse().unwrap();
    let mut a = weir("weir-a", rtmp, http, api, dir.path());
    assert!(
        wait_for_port(addr, Duration::from_secs(15), || a.is_running()),
        "weir A did not start\n{}",
        a.diagnostics()
    );

    // Clients connecting all along: sixteen, each every 1 ms, so that some are on their way
    // (in a listener's accept queue) at the moment A lets the port go. (Before A steered the
    // port to B first, this failed one run in two with connections reset.)
    let stop = Arc::new(AtomicBool::new(false));
    let probers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn({
                let stop = Arc::clone(&stop);
                move || {
                    let (mut ok, mut refused) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match attempt(addr) {
                            Ok(()) => ok += 1,
                            Err(why) => refused.push(why),
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    (ok, refused)
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(500));
    let mut b = weir("weir-b", rtmp, http, api, dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !b.stderr().contains("listening for RTMP on") {
        assert!(
            Instant::now() < deadline && b.is_running(),
            "weir B did not start beside A\n{}",
            b.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.stderr().contains("another process already listens on"),
        "B did not notice the shared port\n{}",
        b.diagnostics()
    );
    std::thread::sleep(Duration::from_millis(500));

    // Drain A; it exits; B alone serves, and takes over the admin port.
    let pid = libc::pid_t::try_from(a.pid()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = a.wait_timeout(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "A did not drain and exit: {status:?}"
    );
    assert!(
        a.stderr()
            .contains("another weir listens on the same port (rtmp.addr, http.addr)"),
        "A did not hand its ports over to B\n{}",
        a.diagnostics()
    );
    std::thread::sleep(Duration::from_millis(1000));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin_answers(admin) {
        assert!(
            Instant::now() < deadline,
            "B never took over the admin port\n{}",
            b.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut refused) = (0, Vec::new());
    for prober in probers {
        let (n, mut failed) = prober.join().unwrap();
        ok += n;
        refused.append(&mut failed);
    }
    assert!(ok > 500, "too few attempts: {ok}");
    assert!(
        refused.is_empty(),
        "{} of {} attempts refused: {refused:?}",
        refused.len(),
        ok + refused.len()
    );
    assert!(b.is_running());
    let pid = libc::pid_t::try_from(b.pid()).expect("pid fits pid_t");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(b.wait_timeout(Duration::from_secs(20)).is_some());
}
