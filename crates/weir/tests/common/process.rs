//! Child processes with timeouts, captured output, and a guard that always kills them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An external program run by a test. Its stdout and stderr go to files in the test's
/// directory (`{name}.N.stdout` / `.stderr`); it is killed and reaped when the guard drops.
pub struct ChildGuard {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

impl ChildGuard {
    /// Spawns `cmd` (stdin closed, output to files in `log_dir`); panics if it cannot start.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> ChildGuard {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let stdout = log_dir.join(format!("{name}.{n}.stdout"));
        let stderr = log_dir.join(format!("{name}.{n}.stderr"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout log"))
            .stderr(File::create(&stderr).expect("create stderr log"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; run scripts/setup.sh"));
        ChildGuard {
            name: name.to_owned(),
            child,
            status: None,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// Captured stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// Captured stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The exit status if the process has ended, without blocking.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on child");
        }
        self.status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for a clean exit (status 0); panics with the captured output
    /// otherwise (the process is killed first if it is still running).
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!("{} exited with {status}\n{}", self.name, self.diagnostics()),
            None => {
                self.kill();
                panic!(
                    "{} did not finish within {timeout:?}; killed\n{}",
                    self.name,
                    self.diagnostics()
                )
            }
        }
    }

    /// Sends SIGINT (the graceful stop for ffmpeg, rtmpdump and `gst-launch-1.0 -e`).
    pub fn interrupt(&mut self) {
        self.signal(libc::SIGINT);
    }

    /// Sends SIGTERM (how a service manager stops a server).
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, …) if the process still runs.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.is_running() {
            let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
            // which has not been reaped yet (try_status returned None), so it is not reused.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Interrupts, waits up to `grace` for the process to end, then kills it.
    /// Returns the exit status, or `None` if it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.interrupt();
        let status = self.wait_timeout(grace);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Kills (SIGKILL) and reaps the process if it is still running.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Time since spawn.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A failure-message block: the command name, status, and the tails of stderr and stdout.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- {} (pid {}, status {:?}) stderr tail ({}):\n{}\n--- stdout tail ({}):\n{}",
            self.name,
            self.child.id(),
            self.status,
            self.stderr.display(),
            tail(&self.stderr(), 30),
            self.stdout.display(),
            tail(&self.stdout(), 10),
        )
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to completion within `timeout` and returns (status, stdout, stderr).
/// Panics with the captured output if it times out (after killing it).
pub fn run(
    name: &str,
    cmd: Command,
    log_dir: &Path,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let mut child = ChildGuard::spawn(name, cmd, log_dir);
    match child.wait_timeout(timeout) {
        Some(status) => (status, child.stdout(), child.stderr()),
        None => {
            child.kill();
            panic!(
                "{name} did not finish within {timeout:?}; killed\n{}",
                child.diagnostics()
            )
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
