//! Captures the in-process server's `tracing` output in memory, so tests can assert on log
//! lines (one global subscriber per test binary, installed on first use).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The shared log buffer.
#[derive(Clone)]
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

/// One writer handed to the `fmt` subscriber per event.
pub struct LogWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.buffer).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer.lock().unwrap_or_else(|p| p.into_inner())
}

impl Logs {
    /// Installs (once) an INFO-level `fmt` subscriber writing into memory and returns its
    /// buffer. Panics if another global subscriber was installed first.
    pub fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs {
                buffer: Arc::new(Mutex::new(Vec::new())),
            };
            let buffer = Arc::clone(&logs.buffer);
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || LogWriter {
                    buffer: Arc::clone(&buffer),
                })
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global tracing subscriber in this test binary");
            logs
        })
        .clone()
    }

    /// Current length of the buffer: pass it to [`Logs::lines_since`] to see only newer lines.
    pub fn mark(&self) -> usize {
        lock(&self.buffer).len()
    }

    /// Complete lines written after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<String> {
        let buffer = lock(&self.buffer);
        let text = String::from_utf8_lossy(buffer.get(mark..).unwrap_or_default());
        text.lines().map(str::to_owned).collect()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buffer)).into_owned()
    }

    /// Waits up to `timeout` for a line after `mark` containing every one of `needles`.
    pub async fn wait_for_line(
        &self,
        mark: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .lines_since(mark)
                .into_iter()
                .find(|line| needles.iter().all(|n| line.contains(n)));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `reason=` of the "rtmp connection closed" line logged for the client whose local
    /// port is `port`, written after `mark`; waits up to `timeout` for it.
    pub async fn close_reason(&self, mark: usize, port: u16, timeout: Duration) -> Option<String> {
        let peer = format!(" peer=127.0.0.1:{port} ");
        let line = self
            .wait_for_line(mark, &["rtmp connection closed", &peer], timeout)
            .await?;
        line.split_once(" reason=")
            .map(|(_, reason)| reason.trim().to_owned())
    }
}
