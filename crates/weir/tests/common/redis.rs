//! A test-owned `redis-server` (Debian's package, installed by scripts/setup.sh) on a free
//! loopback port, without persistence, and a minimal RESP client to look at what weir wrote.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::ChildGuard;
use super::{free_port, wait_for_port};

/// A redis-server the test started; killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<ChildGuard>,
    /// TLS only (`--tls-*` arguments), when set: then `cmd` cannot reach it.
    tls: Option<Vec<String>>,
}

impl RedisServer {
    /// Starts redis-server on a free loopback port (empty, no persistence).
    pub fn start(log_dir: &Path) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: log_dir.to_owned(),
            child: None,
            tls: None,
        };
        server.restart();
        server
    }

    /// Starts redis-server speaking TLS only, with the server certificate `cert`/`key`,
    /// and asking every client for a certificate signed by `ca` (`tls-auth-clients yes`).
    pub fn start_tls(log_dir: &Path, cert: &Path, key: &Path, ca: &Path) -> RedisServer {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut server = RedisServer {
            port: free_port(),
            dir: log_dir.to_owned(),
            child: None,
            tls: Some(vec![
                "--tls-cert-file".to_owned(),
                path(cert),
                "--tls-key-file".to_owned(),
                path(key),
                "--tls-ca-cert-file".to_owned(),
                path(ca),
                "--tls-auth-clients".to_owned(),
                "yes".to_owned(),
            ]),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (its data is gone: it has no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: it stops answering, its data kept.
    pub fn freeze(&mut self, frozen: bool) {
        if let Some(child) = &mut self.child {
            child.signal(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            Some(tls) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(tls),
            None => cmd.args(["--port", &self.port.to_string()]),
        };
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]);
        let mut child = ChildGuard::spawn("redis-server", cmd, &self.dir);
        assert!(
            wait_for_port(self.addr(), Duration::from_secs(10), || child.is_running()),
            "redis-server did not start (run scripts/setup.sh)\n{}",
            child.diagnostics()
        );
        self.child = Some(child);
    }

    /// Runs one command; the reply as text (integers and strings as they are, nil as "",
    /// arrays one element per line, errors as `ERR …`).
    pub fn cmd(&self, args: &[&str]) -> String {
        let mut socket = TcpStream::connect(self.addr()).expect("connect to redis-server");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        socket.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(socket);
        read_reply(&mut reader)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_reply(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("redis reply");
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => rest.to_owned(),
        "-" => rest.to_owned(),
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n < 0 {
                return String::new();
            }
            let mut data = vec![0u8; n as usize + 2];
            std::io::Read::read_exact(reader, &mut data).unwrap();
            String::from_utf8_lossy(&data[..n as usize]).into_owned()
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            (0..n.max(0))
                .map(|_| read_reply(reader))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => panic!("unexpected redis reply {line:?}"),
    }
}

/// Redis's `MONITOR` feed, read on a thread until dropped: every command with its server
/// time, as Redis prints it.
pub struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    socket: TcpStream,
}

impl RedisServer {
    /// Starts watching every command Redis runs.
    pub fn monitor(&self) -> Monitor {
        let mut socket = TcpStream::connect(self.addr()).expect("connect to redis-server");
        socket.write_all(b"*1\r\n$7\r\nMONITOR\r\n").unwrap();
        let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let reader = socket.try_clone().unwrap();
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Monitor { lines, socket }
    }
}

impl Monitor {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}
