//! The player page in headless Chromium: `tests/browser/play.cjs` run on pages, and what it
//! saw.

use std::path::Path;
use std::process::Command;

use super::tools;

/// One page's samples, as `play.cjs` prints them.
#[derive(Debug)]
pub struct PageRun {
    /// The page.
    pub url: String,
    /// What the page was told to do (`switch`, `pause`), if anything.
    pub action: Option<String>,
    /// `currentTime` at each sample.
    pub times: Vec<f64>,
    /// The picture width at each sample.
    pub widths: Vec<u64>,
    /// Seconds behind live at each sample (when the player tells).
    pub latencies: Vec<Option<f64>>,
    /// The player's errors at the end.
    pub errors: Vec<String>,
    /// Renditions hls.js found.
    pub levels: u64,
    /// The rendition hls.js plays.
    pub level: i64,
    /// The picture width at the end.
    pub width: u64,
    /// Seconds behind live at the end.
    pub latency: Option<f64>,
    /// How often the page jumped back to live (far behind).
    pub jumps: u64,
    /// The page's console errors.
    pub logs: Vec<String>,
    /// The media's duration at the end (a finite one: VOD).
    pub duration: Option<f64>,
    /// How far back the viewer can seek at the end: (start, end) of the seekable range.
    pub seekable: Option<(f64, f64)>,
}

/// Runs `play.cjs` on `targets` at once for `seconds`.
pub fn play_pages(targets: &[String], seconds: u32, dir: &Path) -> Vec<PageRun> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/play.cjs");
    let out = Command::new("node")
        .arg(script)
        .arg(seconds.to_string())
        .args(targets)
        .env("NODE_PATH", tools::browser_modules())
        .env("WEIR_CHROMIUM", tools::chromium())
        .current_dir(dir)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "play.cjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            let samples = v["samples"].as_array().cloned().unwrap_or_default();
            let last = samples.last().cloned().unwrap_or_default();
            PageRun {
                url: v["url"].as_str().unwrap_or_default().to_owned(),
                action: v["action"].as_str().map(str::to_owned),
                times: samples
                    .iter()
                    .map(|s| s["time"].as_f64().unwrap_or(0.0))
                    .collect(),
                widths: samples
                    .iter()
                    .map(|s| s["width"].as_u64().unwrap_or(0))
                    .collect(),
                latencies: samples.iter().map(|s| s["latency"].as_f64()).collect(),
                errors: last["errors"]
                    .as_array()
                    .map(|e| e.iter().map(|x| x.to_string()).collect())
                    .unwrap_or_default(),
                levels: last["levels"].as_u64().unwrap_or(0),
                level: last["level"].as_i64().unwrap_or(-1),
                width: last["width"].as_u64().unwrap_or(0),
                latency: last["latency"].as_f64(),
                jumps: last["jumps"].as_u64().unwrap_or(0),
                duration: last["duration"].as_f64(),
                seekable: last["seekStart"].as_f64().zip(last["seekEnd"].as_f64()),
                logs: v["logs"]
                    .as_array()
                    .map(|e| e.iter().map(|x| x.to_string()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The npm-installed player libraries copied to `dir/libs`, for `http.player_lib_dir`.
pub fn player_libs(dir: &Path) -> std::path::PathBuf {
    let libs = dir.join("libs");
    std::fs::create_dir_all(&libs).unwrap();
    let modules = tools::browser_modules();
    for (from, name) in [
        ("hls.js/dist/hls.min.js", "hls.min.js"),
        ("mpegts.js/dist/mpegts.js", "mpegts.js"),
        ("dashjs/dist/modern/umd/dash.all.min.js", "dash.all.min.js"),
    ] {
        std::fs::copy(modules.join(from), libs.join(name)).unwrap();
    }
    libs
}
