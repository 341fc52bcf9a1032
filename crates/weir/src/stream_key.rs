//! [`StreamKey`]: which stream a publish or play names, and the query that came with it.

use std::fmt;

/// A stream named by a request: the application (`live`), the stream name (`alice`) and the
/// query string that came with the name (`alice?token=…`), kept for policies. (A query on the
/// connect URL is in the connect request, [`crate::policy::ConnectRequest::query`].)
///
/// The hub knows a stream by its [`StreamKey::path`], `app/name`; the query is never part of
/// it, so `live/alice?token=1` and `live/alice?token=2` are the same stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// `app/name` (one allocation: every connection keeps a key or two).
    path: String,
    /// Length of the app part of `path`.
    app_len: usize,
    query: Option<String>,
}

impl StreamKey {
    /// A key for `app/name` with an optional query (without its `?`).
    pub fn new(app: &str, name: &str, query: Option<&str>) -> StreamKey {
        StreamKey {
            path: format!("{app}/{name}"),
            app_len: app.len(),
            query: query.filter(|q| !q.is_empty()).map(str::to_owned),
        }
    }

    /// The application, e.g. `live`.
    pub fn app(&self) -> &str {
        &self.path[..self.app_len]
    }

    /// The stream name inside the application, e.g. `alice`.
    pub fn name(&self) -> &str {
        &self.path[self.app_len + 1..]
    }

    /// The query string, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// `app/name`: how the hub, the logs and the URLs of other outputs name the stream.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The first value of `param` in the query (`token` in `?token=abc&x=1` gives `abc`).
    /// Values are returned as sent, without percent-decoding.
    pub fn query_param(&self, param: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == param).then_some(value)
        })
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_leaves_the_query_out() {
        let key = StreamKey::new("live", "alice", Some("token=abc&x=1&flag"));
        assert_eq!(key.path(), "live/alice");
        assert_eq!((key.app(), key.name()), ("live", "alice"));
        let nested = StreamKey::new("live/inst", "a/b", None);
        assert_eq!((nested.app(), nested.name()), ("live/inst", "a/b"));
        assert_eq!(key.to_string(), "live/alice");
        assert_eq!(key.query_param("token"), Some("abc"));
        assert_eq!(key.query_param("x"), Some("1"));
        assert_eq!(key.query_param("flag"), Some(""));
        assert_eq!(key.query_param("nope"), None);
        assert_eq!(StreamKey::new("live", "a", Some("")).query(), None);
    }
}
