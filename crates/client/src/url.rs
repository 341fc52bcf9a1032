//! `rtmp://` and `rtmps://` URLs, split into app and stream the way FFmpeg splits them.

use std::fmt;

use crate::ClientError;

/// Port used when an `rtmp://` URL names none.
pub const DEFAULT_PORT: u16 = 1935;
/// Port used when an `rtmps://` URL names none.
pub const DEFAULT_TLS_PORT: u16 = 443;

/// An `rtmp[s]://host[:port]/app/stream` URL, split the way FFmpeg splits it.
///
/// FFmpeg's rule (libavformat/rtmpproto.c): with one path element, it is the app and there is
/// no stream; with two, `app/stream`; with three or more, the first two elements are the app
/// (`app/instance`) and the rest is the stream — unless the second element contains a `:`
/// (`vod/mp4:dir/file`), in which case only the first is the app. So `live/a/b` is app
/// `live/a`, stream `b` (the last element), and `live/a/b/c` is app `live/a`, stream `b/c`.
/// A query stays on the stream name (`live/key?token=abc` → stream `key?token=abc`), and
/// slashes inside it are not path separators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// True for `rtmps://` (RTMP over TLS), false for `rtmp://`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Application name.
    pub app: String,
    /// Stream name with its query, possibly empty.
    pub stream: String,
}

impl RtmpUrl {
    /// Where an E-RTMP ReconnectRequest sends this stream: `tc_url` resolved against this
    /// URL (absolute `rtmp://host/app`, scheme-relative `//host/app`, path-relative `/app`;
    /// `None`: the same place), with the same stream name.
    pub fn reconnect_target(&self, tc_url: Option<&str>) -> Result<RtmpUrl, ClientError> {
        let Some(tc_url) = tc_url.filter(|t| !t.is_empty()) else {
            return Ok(self.clone());
        };
        let base = if tc_url.contains("://") {
            tc_url.to_owned()
        } else if let Some(rest) = tc_url.strip_prefix("//") {
            format!("{}://{rest}", self.scheme())
        } else if let Some(path) = tc_url.strip_prefix('/') {
            format!("{}://{}/{path}", self.scheme(), self.authority())
        } else {
            return Err(ClientError::BadUrl {
                url: tc_url.to_owned(),
                why: "not an absolute, //host or /path tcUrl",
            });
        };
        let app = RtmpUrl::parse(base.trim_end_matches('/'))?;
        Ok(app.with_stream(&self.stream))
    }

    /// Parses `rtmp://host[:port]/app[/stream]` or the same with `rtmps://`.
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = |why| ClientError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("no scheme"))?;
        let tls = if scheme.eq_ignore_ascii_case("rtmp") {
            false
        } else if scheme.eq_ignore_ascii_case("rtmps") {
            true
        } else {
            return Err(bad("only rtmp:// and rtmps:// are supported"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, port) =
            split_authority(authority, default_port).ok_or(bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (app, stream) = split_path(path);
        if app.is_empty() {
            return Err(bad("no app"));
        }
        Ok(RtmpUrl {
            tls,
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    /// `rtmp` or `rtmps`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "rtmps"
        } else {
            "rtmp"
        }
    }

    /// `host:port` (IPv6 in brackets), as used in tcUrl.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The tcUrl sent in `connect`: `scheme://host:port/app`.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme(), self.authority(), self.app)
    }

    /// The same server and app with another stream name.
    pub fn with_stream(&self, stream: &str) -> RtmpUrl {
        RtmpUrl {
            stream: stream.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tc_url())?;
        if !self.stream.is_empty() {
            write!(f, "/{}", self.stream)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for RtmpUrl {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RtmpUrl::parse(s)
    }
}

fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    Some((host, port))
}

/// FFmpeg's app/playpath split of the URL path (without its leading `/`). Slashes inside the
/// query do not count (FFmpeg counts them; a token with a `/` would move into the app).
fn split_path(path: &str) -> (&str, &str) {
    let bare = path.split_once('?').map_or(path, |(bare, _)| bare);
    let Some(first) = bare.find('/') else {
        return (bare, path.get(bare.len()..).unwrap_or_default());
    };
    let after = &bare[first + 1..];
    let colon = after.find(':');
    match after.find('/') {
        Some(second) if !matches!(colon, Some(c) if c < second) => {
            (&path[..first + 1 + second], &path[first + second + 2..])
        }
        _ => (&path[..first], &path[first + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> (String, u16, String, String) {
        let u = RtmpUrl::parse(s).unwrap();
        (u.host, u.port, u.app, u.stream)
    }

    #[test]
    fn parses_urls_like_ffmpeg() {
        let t = |h: &str, p, a: &str, s: &str| (h.to_owned(), p, a.to_owned(), s.to_owned());
        assert_eq!(url("rtmp://h/live/key"), t("h", 1935, "live", "key"));
        assert_eq!(url("rtmp://h:1936/live"), t("h", 1936, "live", ""));
        assert_eq!(url("RTMP://h/live/"), t("h", 1935, "live", ""));
        assert_eq!(
            url("rtmp://127.0.0.1:19350/live/key?token=a/b"),
            t("127.0.0.1", 19350, "live", "key?token=a/b")
        );
        assert_eq!(url("rtmp://h/live?x=1"), t("h", 1935, "live", "?x=1"));
        assert_eq!(
            url("rtmp://h/live/inst/key"),
            t("h", 1935, "live/inst", "key")
        );
        assert_eq!(url("rtmp://h/a/b/c/d"), t("h", 1935, "a/b", "c/d"));
        assert_eq!(
            url("rtmp://h/vod/mp4:dir/file"),
            t("h", 1935, "vod", "mp4:dir/file")
        );
        assert_eq!(url("rtmp://[::1]:99/live/k"), t("::1", 99, "live", "k"));
        assert_eq!(url("rtmp://[::1]/live/k"), t("::1", 1935, "live", "k"));
    }

    #[test]
    fn rtmps_defaults_to_port_443() {
        let u = RtmpUrl::parse("rtmps://h/live/key").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.port, u.app.as_str(), u.stream.as_str()),
            (443, "live", "key")
        );
        assert_eq!(u.tc_url(), "rtmps://h:443/live");
        let u = RtmpUrl::parse("RTMPS://h:8443/live").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 8443);
        assert!(!RtmpUrl::parse("rtmp://h/live").unwrap().tls);
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "http://h/live/k",
            "rtmpt://h/live/k",
            "h/live/k",
            "rtmp:///live/k",
            "rtmp://h",
            "rtmp://h/",
            "rtmp://h:x/live/k",
            "rtmp://h:70000/live/k",
            "rtmp://[::1/live/k",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in [
            "rtmp://h:1935/live/key",
            "rtmp://[::1]:1936/a/b/c",
            "rtmp://h:1/live",
            "rtmps://h:443/live/key",
        ] {
            assert_eq!(RtmpUrl::parse(s).unwrap().to_string(), s);
        }
        let u = RtmpUrl::parse("rtmp://h/live/a")
            .unwrap()
            .with_stream("b?x=1");
        assert_eq!(u.to_string(), "rtmp://h:1935/live/b?x=1");
    }

    #[test]
    fn reconnect_targets_resolve_against_the_current_url() {
        let current = RtmpUrl::parse("rtmp://a.example:1935/live/cam?token=1").unwrap();
        let target = |tc: Option<&str>| current.reconnect_target(tc).unwrap().to_string();
        assert_eq!(target(None), "rtmp://a.example:1935/live/cam?token=1");
        assert_eq!(target(Some("")), "rtmp://a.example:1935/live/cam?token=1");
        assert_eq!(
            target(Some("rtmp://b.example:19350/live")),
            "rtmp://b.example:19350/live/cam?token=1"
        );
        assert_eq!(
            target(Some("//c.example/edge/")),
            "rtmp://c.example:1935/edge/cam?token=1"
        );
        assert_eq!(
            target(Some("/backup")),
            "rtmp://a.example:1935/backup/cam?token=1"
        );
        assert!(current.reconnect_target(Some("elsewhere")).is_err());
        assert!(current.reconnect_target(Some("http://x/y")).is_err());
    }
}
