//! nginx with the RTMP module (Debian `libnginx-mod-rtmp`), as an independent reference
//! server on a free loopback port.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{self, ChildGuard};
use super::{free_port, tools, wait_for_port, TestDir};

/// A running nginx-rtmp (single process, `daemon off`), killed on drop.
///
/// Configuration: `listen 127.0.0.1:PORT; chunk_size 4096; application live { live on;
/// wait_key on; wait_video on; }`; no `http` block, so nothing else is bound.
pub struct NginxRtmp {
    child: ChildGuard,
    addr: SocketAddr,
    dir: TestDir,
}

impl NginxRtmp {
    /// Starts nginx-rtmp on a free port (retrying with another port if the bind loses a
    /// race) and waits until it accepts connections.
    pub fn start() -> NginxRtmp {
        let nginx = tools::nginx();
        let module = tools::nginx_rtmp_module();
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = TestDir::new("nginx");
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port()));
            let conf = dir.file("nginx.conf");
            std::fs::write(&conf, config(dir.path(), module, addr)).expect("write nginx.conf");
            let mut cmd = Command::new(nginx);
            // -e: the error log before the config is read (else /var/log/nginx/error.log).
            cmd.arg("-e")
                .arg(dir.file("error.log"))
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf);
            let mut child = ChildGuard::spawn("nginx", cmd, dir.path());
            if wait_for_port(addr, Duration::from_secs(10), || child.is_running()) {
                return NginxRtmp { child, addr, dir };
            }
            child.kill();
            last_error = format!(
                "{}\n--- error.log:\n{}",
                child.diagnostics(),
                process::tail(
                    &std::fs::read_to_string(dir.file("error.log")).unwrap_or_default(),
                    20
                )
            );
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx-rtmp did not start:\n{last_error}")
    }

    /// The nginx process id (to freeze it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The RTMP listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtmp://127.0.0.1:PORT/live/{stream}`.
    pub fn url(&self, stream: &str) -> String {
        super::rtmp_url(self.addr, "live", stream)
    }

    /// The tail of nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        process::tail(
            &std::fs::read_to_string(self.dir.file("error.log")).unwrap_or_default(),
            30,
        )
    }

    /// Panics with nginx's log if it has exited.
    pub fn assert_running(&mut self) {
        assert!(
            self.child.is_running(),
            "nginx exited\n{}\n{}",
            self.child.diagnostics(),
            self.error_log()
        );
    }
}

fn config(dir: &Path, module: &Path, addr: SocketAddr) -> String {
    format!(
        "daemon off;\n\
         master_process off;\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {log} info;\n\
         load_module {module};\n\
         events {{ worker_connections 256; }}\n\
         rtmp {{\n\
         \x20   server {{\n\
         \x20       listen {addr};\n\
         \x20       chunk_size 4096;\n\
         \x20       application live {{\n\
         \x20           live on;\n\
         \x20           wait_key on;\n\
         \x20           wait_video on;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        pid = dir.join("nginx.pid").display(),
        log = dir.join("error.log").display(),
        module = module.display(),
    )
}
