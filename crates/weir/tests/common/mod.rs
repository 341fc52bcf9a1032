//! Real-client end-to-end test harness.
//!
//! Everything here drives independent, external programs (FFmpeg, ffprobe, rtmpdump,
//! GStreamer, nginx-rtmp) against an RTMP server given by its address, so the same
//! harness checks nginx-rtmp (to validate the harness itself) and weir.
//!
//! All helpers are blocking; call them from `tokio::task::spawn_blocking` when the server
//! under test runs in-process on a tokio runtime. Every child process is owned by a
//! [`process::ChildGuard`] that kills it on drop, and every wait has a timeout.
//!
//! A missing tool is a test failure whose message says to run `scripts/setup.sh`.

#![allow(dead_code)]

pub mod access;
pub mod bad_bytes;
pub mod browser;
pub mod clients;
pub mod cluster;
pub mod fixtures;
pub mod logs;
pub mod nginx;
pub mod playlist;
pub mod probe;
pub mod process;
pub mod raw_client;
pub mod redis;
pub mod server;
pub mod tls;
pub mod tools;
pub mod verdict;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// Re-exports for test files; each test binary uses a different subset.
#[allow(unused_imports)]
pub use clients::{
    ffmpeg_play_to_flv, ffmpeg_publish, ffprobe_url, gst_play, gst_publish, rtmpdump_play,
    wait_until_playable, Ffmpeg, Publisher,
};
#[allow(unused_imports)]
pub use fixtures::{fixture, Fixture, FixtureKind};
#[allow(unused_imports)]
pub use nginx::NginxRtmp;
#[allow(unused_imports)]
pub use probe::{probe_file, Expect, MediaReport};
#[allow(unused_imports)]
pub use server::{loopback_config, WeirServer};

/// `rtmp://{addr}/{app}/{stream}`.
pub fn rtmp_url(addr: SocketAddr, app: &str, stream: &str) -> String {
    format!("rtmp://{addr}/{app}/{stream}")
}

/// A loopback port that was free a moment ago (bind 127.0.0.1:0, read the port, release it).
///
/// Another process may take it before it is used: callers that start a server on it must
/// retry with a fresh port when the bind fails.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until `addr` accepts a TCP connection; `alive` is polled in between and returning
/// `false` (e.g. the server process exited) ends the wait early. Returns whether it connected.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration, mut alive: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if !alive() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A per-test scratch directory for recordings and tool logs.
///
/// Removed on drop, except when the test is panicking or `WEIR_KEEP_TEST_DIRS` is set:
/// then it is kept and its path printed, so the logs of a failed run can be read.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `$TMPDIR/weir-e2e-{name}-XXXXXX`.
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("weir-e2e-{name}-"))
            .tempdir()
            .expect("create test temp dir");
        TestDir { path: dir.keep() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("WEIR_KEEP_TEST_DIRS").is_some() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
