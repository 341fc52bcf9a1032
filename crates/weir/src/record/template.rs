//! `record.path` templates: expanding them for a new file, and matching files back to the
//! stream they belong to (listing, playback, retention).
//!
//! Stream and app names are never trusted as paths: each is reduced to ASCII letters,
//! digits, `.`, `_` and `-` (anything else becomes `_`), may not start with a dot, and is cut
//! at 96 bytes; a name that had to change gets `-` and a hash of the original. So a name
//! such as `../../x`, `/etc/passwd` or one with NUL or control characters lands inside the
//! template's directory, and no two names share one.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest name kept whole in a path.
const MAX_NAME: usize = 96;

/// Whether `template` is usable; the message says what to change.
pub(crate) fn check(template: &str) -> Result<(), &'static str> {
    if template.trim().is_empty() {
        return Err("is empty; use something like \"recordings/{app}/{stream}/{start}.{ext}\"");
    }
    if !template.contains("{stream}") {
        return Err("has no {stream}: every stream's files would be mixed up");
    }
    if !template.contains("{start") {
        return Err("has no {start} (or {start:FORMAT}): file names would not be unique");
    }
    if template.split('/').any(|c| c == "..") {
        return Err("has a `..` component; name the directory directly");
    }
    if template.ends_with('/') {
        return Err("ends with `/`: it must name a file");
    }
    for token in tokens(template) {
        if let Token::Bad = token {
            return Err("has an unknown or unclosed {…}: use {app}, {stream}, {start}, {start:FORMAT} or {ext}");
        }
    }
    Ok(())
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    App,
    Stream,
    /// `{start}` or `{start:FORMAT}`.
    Start(String),
    Ext,
    Bad,
}

fn tokens(template: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Token::Text(rest[..open].to_owned()));
        }
        let Some(close) = rest[open..].find('}') else {
            out.push(Token::Bad);
            return out;
        };
        let inner = &rest[open + 1..open + close];
        out.push(match inner {
            "app" => Token::App,
            "stream" => Token::Stream,
            "ext" => Token::Ext,
            "start" => Token::Start("%Y-%m-%d_%H-%M-%S".into()),
            _ => match inner.strip_prefix("start:") {
                Some(format) if !format.is_empty() && !format.contains('/') => {
                    Token::Start(format.to_owned())
                }
                _ => Token::Bad,
            },
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest.to_owned()));
    }
    out
}

/// `name` made safe as one path component; see the module docs.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    if out.len() > MAX_NAME || out != name {
        // A name that had to change carries a hash of itself: `a b` and `a_b` never share
        // a directory.
        let hash = Sha256::digest(name.as_bytes());
        out.truncate(MAX_NAME);
        out.push('-');
        for byte in &hash[..4] {
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

/// The path of a new file of `app/stream` started at `start_ms` (UTC).
pub(crate) fn expand(template: &str, app: &str, stream: &str, start_ms: u64, ext: &str) -> PathBuf {
    let mut out = String::new();
    for token in tokens(template) {
        match token {
            Token::Text(text) => out.push_str(&text),
            Token::App => out.push_str(&sanitize(app)),
            Token::Stream => out.push_str(&sanitize(stream)),
            Token::Start(format) => out.push_str(&sanitize(&strftime(&format, start_ms))),
            Token::Ext => out.push_str(ext),
            Token::Bad => {}
        }
    }
    PathBuf::from(out)
}

/// Where a stream's files are: the directory every one of them is under, and the pattern
/// their paths below it match.
#[derive(Debug, Clone)]
pub(crate) struct StreamFiles {
    /// The fixed directory (the template up to the first component with a `{start}`).
    pub(crate) base: PathBuf,
    /// The rest, `*` standing for each `{start}` and `{ext}`.
    pattern: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Any run of characters but `/`; with a set, only characters from it (a `{start}`
    /// matches digits and its format's own characters, `{ext}` the letters of `mp4`/`flv`),
    /// so one stream's pattern cannot take another stream's files.
    Any(Option<String>),
}

impl StreamFiles {
    /// The files of `app/stream` under `template`.
    pub(crate) fn new(template: &str, app: &str, stream: &str) -> StreamFiles {
        Self::build(template, Some(app), Some(stream))
    }

    /// Every recording of `app` under `template` (`None`: of any app), whatever its stream
    /// (for retention).
    pub(crate) fn all(template: &str, app: Option<&str>) -> StreamFiles {
        Self::build(template, app, None)
    }

    fn build(template: &str, app: Option<&str>, stream: Option<&str>) -> StreamFiles {
        let mut pieces = Vec::new();
        for token in tokens(template) {
            let piece = match token {
                Token::Text(text) => Piece::Text(text),
                Token::App if app.is_some() => Piece::Text(sanitize(app.unwrap_or_default())),
                Token::Stream if stream.is_some() => {
                    Piece::Text(sanitize(stream.unwrap_or_default()))
                }
                Token::Start(format) => Piece::Any(Some(format!("0123456789{}", literal(&format)))),
                Token::Ext => Piece::Any(Some("mp4flv".into())),
                _ => Piece::Any(None),
            };
            match (pieces.last_mut(), piece) {
                (Some(Piece::Text(last)), Piece::Text(text)) => last.push_str(&text),
                (_, piece) => pieces.push(piece),
            }
        }
        // The fixed directory: whole components before the first wildcard.
        let mut base = String::new();
        if let Some(Piece::Text(first)) = pieces.first_mut() {
            let fixed_dirs = first.rfind('/').map_or(0, |i| i + 1);
            base = first[..fixed_dirs].to_owned();
            first.drain(..fixed_dirs);
            if first.is_empty() {
                pieces.remove(0);
            }
        }
        StreamFiles {
            base: if base.is_empty() {
                PathBuf::from(".")
            } else {
                PathBuf::from(base.trim_end_matches('/'))
            },
            pattern: pieces,
        }
    }

    /// Whether `relative` (below `base`, `/`-separated) is one of the files.
    pub(crate) fn matches(&self, relative: &str) -> bool {
        if relative
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return false;
        }
        glob(&self.pattern, relative)
    }

    /// How many directory levels below `base` the files are.
    pub(crate) fn depth(&self) -> usize {
        self.pattern
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.matches('/').count(),
                Piece::Any(_) => 0,
            })
            .sum()
    }

    /// The files that exist, as paths relative to `base`, sorted.
    pub(crate) fn list(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.base, "", self.depth(), &mut |relative| {
            if self.matches(relative) {
                found.push(relative.to_owned());
            }
        });
        found.sort();
        found
    }

    /// The path of `relative` if it is one of the files that exist (never outside `base`).
    /// A name from a request is only compared with the listing, never matched against the
    /// pattern (whose wildcards backtrack), and refused at once when no file name could be
    /// that long.
    pub(crate) fn resolve(&self, relative: &str) -> Option<PathBuf> {
        if relative.len() > 1024 || relative.split('/').any(|c| c.len() > 255) {
            return None;
        }
        self.list()
            .iter()
            .any(|f| f == relative)
            .then(|| self.base.join(relative))
    }
}

/// Calls `found` with every regular file `depth` directory levels below `dir`.
fn walk(dir: &Path, prefix: &str, depth: usize, found: &mut dyn FnMut(&str)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if depth == 0 && kind.is_file() {
            found(&relative);
        } else if depth > 0 && kind.is_dir() {
            walk(&entry.path(), &relative, depth - 1, found);
        }
    }
}

/// Whether `text` matches `pattern` (`Any` matches any run of characters but `/`).
fn glob(pattern: &[Piece], text: &str) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(t), rest)) => text
            .strip_prefix(t.as_str())
            .is_some_and(|after| glob(rest, after)),
        Some((Piece::Any(allowed), rest)) => {
            let limit = text
                .find(|c: char| c == '/' || allowed.as_ref().is_some_and(|a| !a.contains(c)))
                .unwrap_or(text.len());
            (0..=limit).any(|n| text.is_char_boundary(n) && glob(rest, &text[n..]))
        }
    }
}

/// The characters `format` writes as they are (not its `%X` conversions).
fn literal(format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                if chars.next() == Some('%') {
                    out.push('%');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `format` with `%Y %m %d %H %M %S %s %%` replaced for `unix_ms` (UTC).
fn strftime(format: &str, unix_ms: u64) -> String {
    // 2026-11-27T01:23:45.678Z
    let iso = weir_media::hls::iso8601(unix_ms);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&iso[0..4]),
            Some('m') => out.push_str(&iso[5..7]),
            Some('d') => out.push_str(&iso[8..10]),
            Some('H') => out.push_str(&iso[11..13]),
            Some('M') => out.push_str(&iso[14..16]),
            Some('S') => out.push_str(&iso[17..19]),
            Some('s') => out.push_str(&(unix_ms / 1000).to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "recordings/{app}/{stream}/{start}.{ext}";
    /// 2026-11-27T10:30:05Z
    const MS: u64 = 1_795_775_405_000;

    #[test]
    fn expands_and_matches_back() {
        let path = expand(T, "live", "alice", MS, "mp4");
        assert_eq!(
            path,
            PathBuf::from("recordings/live/alice/2026-11-27_10-30-05.mp4")
        );
        let files = StreamFiles::new(T, "live", "alice");
        assert_eq!(files.base, PathBuf::from("recordings/live/alice"));
        assert!(files.matches("2026-11-27_10-30-05.mp4"));
        assert!(!files.matches("x/2026.mp4"));
        assert!(!files.matches(".."));
        let all = StreamFiles::all(T, None);
        assert_eq!(all.base, PathBuf::from("recordings"));
        assert_eq!(all.depth(), 2);
        assert!(all.matches("live/alice/2026-11-27_10-30-05.mp4"));
        assert!(!all.matches("live/../x.mp4"));
        let custom = "/var/rec/{start:%Y/%m}/{stream}-{start:%s}.mp4";
        assert!(check(custom).is_err(), "a / in a format is refused");
        let custom = "/var/rec/{start:%Y%m%d}/{app}-{stream}-{start:%s}.mp4";
        check(custom).unwrap();
        let path = expand(custom, "live", "bob", MS, "mp4");
        assert_eq!(
            path,
            PathBuf::from("/var/rec/20261127/live-bob-1795775405.mp4")
        );
        let files = StreamFiles::new(custom, "live", "bob");
        assert_eq!(files.base, PathBuf::from("/var/rec"));
        assert!(files.matches("20261127/live-bob-1795775405.mp4"));
        assert!(!files.matches("20261127/live-bobby-1795775405.mp4x"));
    }

    #[test]
    fn hostile_names_stay_inside() {
        for name in [
            "../../x",
            "a/../../b",
            "/etc/passwd",
            "a\0b",
            "\x1b[31m",
            ".hidden",
            "..",
            "",
        ] {
            let path = expand(T, "live", name, MS, "mp4");
            let text = path.to_str().unwrap();
            assert!(text.starts_with("recordings/live/"), "{name:?} -> {text}");
            assert!(
                !path.components().any(|c| c.as_os_str() == ".."),
                "{name:?} -> {text}"
            );
            assert_eq!(path.components().count(), 4, "{name:?} -> {text}");
            assert!(!text.contains('\0'));
        }
        let long = "x".repeat(5000);
        let name = sanitize(&long);
        assert!(name.len() < 120);
        assert_ne!(name, sanitize(&"x".repeat(4999)));
        assert_ne!(sanitize("a b"), sanitize("a_b"));
        assert_eq!(sanitize("a_b"), "a_b");
        // One stream's files are not another's when {stream} and {start} share a name.
        let shared = "rec/{app}-{stream}-{start:%s}.{ext}";
        let bob = StreamFiles::new(shared, "live", "bob");
        assert!(bob.matches("live-bob-1795775405.mp4"));
        assert!(!bob.matches("live-bob-x-1795775405.mp4"));
    }

    #[test]
    fn templates_are_checked() {
        check(T).unwrap();
        assert!(check("").is_err());
        assert!(check("rec/{start}.mp4").is_err());
        assert!(check("rec/{stream}.mp4").is_err());
        assert!(check("../{stream}/{start}.mp4").is_err());
        assert!(check("rec/{stream}/{start}.{nope}").is_err());
        assert!(check("rec/{stream}/{start").is_err());
    }
}
