//! weir under test: an in-process server on its own tokio runtime, bound to 127.0.0.1:0,
//! with its log captured to a file in the test directory.
//!
//! The server runs on a private two-worker runtime, so a plain `#[test]` can call the
//! blocking client helpers directly. Each worker thread gets this server's tracing
//! subscriber as its thread default, so concurrent tests keep separate logs.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

use super::process::tail;

/// A running in-process weir.
pub struct WeirServer {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<weir::Server>,
    addr: SocketAddr,
    log: PathBuf,
}

impl WeirServer {
    /// Starts weir with the default configuration on `127.0.0.1:0`; the log (filter from
    /// `WEIR_LOG`, default `info`) goes to `weir.log` in `log_dir`.
    pub fn start(log_dir: &Path) -> WeirServer {
        Self::start_with(loopback_config(), log_dir)
    }

    /// Starts weir with `config` (which must bind loopback).
    pub fn start_with(config: weir::Config, log_dir: &Path) -> WeirServer {
        assert!(
            config.rtmp.addr.ip().is_loopback(),
            "tests bind loopback only"
        );
        let log = log_dir.join("weir.log");
        let file = File::create(&log).expect("create weir.log");
        let filter = std::env::var("WEIR_LOG").unwrap_or_else(|_| "info".to_owned());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .finish();
        let dispatch = tracing::Dispatch::new(subscriber);
        let for_workers = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("weir-under-test")
            .on_thread_start(move || {
                // Kept for the thread's lifetime: this runtime's threads log to this file.
                std::mem::forget(tracing::dispatcher::set_default(&for_workers));
            })
            .build()
            .expect("build tokio runtime");
        let server = tracing::dispatcher::with_default(&dispatch, || {
            runtime
                .block_on(weir::Server::start(config))
                .expect("start weir on 127.0.0.1:0")
        });
        let addr = server.rtmp_addr();
        assert!(addr.port() != 0, "weir reported port 0 for {addr}");
        eprintln!("weir listening on {addr}, log {}", log.display());
        WeirServer {
            runtime: Some(runtime),
            server: Some(server),
            addr,
            log,
        }
    }

    /// The bound RTMP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtmp://127.0.0.1:PORT/live/{key}`.
    pub fn url(&self, key: &str) -> String {
        super::rtmp_url(self.addr, "live", key)
    }

    /// The bound RTMPS address, when RTMPS is on.
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().expect("server running").rtmps_addr()
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.server.as_ref().expect("server running").http_addr()
    }

    /// `http://127.0.0.1:PORT/live/{key}.flv`.
    pub fn flv_url(&self, key: &str) -> String {
        format!("http://{}/live/{key}.flv", self.http_addr())
    }

    /// Debian's FFmpeg publishing the H.264 Baseline fixture in real time to `live/{key}`,
    /// once weir has it as published.
    pub fn publish_fixture(&self, key: &str, log_dir: &Path) -> super::Publisher {
        self.publish(
            key,
            super::fixture(super::FixtureKind::H264Baseline),
            log_dir,
        )
    }

    /// Debian's FFmpeg publishing `fixture` in real time to `live/{key}`, once weir has it as
    /// published.
    pub fn publish(
        &self,
        key: &str,
        fixture: &super::fixtures::Fixture,
        log_dir: &Path,
    ) -> super::Publisher {
        let start = Duration::from_secs(15);
        let mut publisher = super::ffmpeg_publish(
            super::Ffmpeg::Debian,
            &self.url(key),
            fixture,
            true,
            log_dir,
        );
        publisher.wait_started(start);
        self.wait_published(&[&format!("live/{key}")], start);
        publisher
    }

    /// The bound admin API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.server.as_ref().expect("server running").api_addr()
    }

    /// The stream hub.
    pub fn hub(&self) -> &Arc<weir::hub::Hub> {
        self.server.as_ref().expect("server running").hub()
    }

    /// Keys with a live publisher, sorted.
    pub fn published_keys(&self) -> Vec<String> {
        let mut keys = self.hub().published_keys();
        keys.sort();
        keys
    }

    /// Polls until the published keys equal `want` (sorted); panics with the log on timeout.
    pub fn wait_published(&self, want: &[&str], timeout: Duration) {
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        let deadline = Instant::now() + timeout;
        loop {
            let keys = self.published_keys();
            if keys == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "published keys {keys:?}, want {want:?} within {timeout:?}\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole server log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the server log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- weir log tail ({}):\n{}",
            self.log.display(),
            tail(&self.log_text(), n)
        )
    }

    /// Shuts the server down and waits for its connections to close.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let (Some(runtime), Some(server)) = (self.runtime.take(), self.server.take()) {
            runtime.block_on(server.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for WeirServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(60));
        }
        self.stop();
    }
}

/// The default configuration with every listener on a free loopback port (RTMPS's too, for
/// tests that turn it on).
pub fn loopback_config() -> weir::Config {
    let mut config = weir::Config::default();
    config.rtmp.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.http.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.rtmps.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.api.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config
}
