//! The cluster store on Redis: every operation is one Lua script (atomic on the server;
//! `EVALSHA`, loaded again after a Redis restart), so no lease is ever written blindly.
//!
//! Keys, under `cluster.key_prefix` (`P`): `P:node:ID` (hash: incarnation, addresses, beat
//! counter; expires after the heartbeat's time to live), `P:nodes` (set of node ids),
//! `P:lease:STREAM` (hash: node, incarnation, epoch, since), `P:leases` (set of streams),
//! `P:epoch:STREAM` (the epoch counter, never decreasing, kept when a lease is released),
//! `P:token` (the cluster pull token). A single Redis (with replicas or Sentinel for
//! failover) — not Redis Cluster: a script touches keys of several streams and nodes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ClientTlsConfig, Script, TlsCertificates, Value};
use tokio::sync::Mutex;

use crate::config::ClusterConfig;

use super::store::{
    Acquire, Beat, BeatReply, LeaseView, Member, NodeView, Owner, Store, StoreError, StoreResult,
    View,
};

/// The longest a connection attempt or a command waits (a cold play must hear of an
/// outage within a second).
const TIMEOUT: Duration = Duration::from_millis(700);

/// The Redis store.
pub(crate) struct RedisStore {
    client: Client,
    prefix: String,
    /// The connection, opened on first use and again after an error.
    connection: Mutex<Option<MultiplexedConnection>>,
    heartbeat: Script,
    acquire: Script,
    release: Script,
    resolve: Script,
    view: Script,
    leave: Script,
    hls: Script,
}

/// The certificates of a `rediss://` connection, read from the configured files.
fn tls_files(config: &ClusterConfig) -> Result<TlsCertificates, StoreError> {
    let read = |key: &str, path: &str| -> Result<Option<Vec<u8>>, StoreError> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path)
            .map(Some)
            .map_err(|e| StoreError(format!("{key}: cannot read {path}: {e}")))
    };
    let root_cert = read("cluster.redis_ca_file", &config.redis_ca_file)?;
    let cert = read("cluster.redis_cert_file", &config.redis_cert_file)?;
    let key = read("cluster.redis_key_file", &config.redis_key_file)?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

impl RedisStore {
    /// A store on `cluster.redis_url` (not connected yet: the first call connects). A
    /// `rediss://` URL connects over TLS, trusting `redis_ca_file` (or the system's roots)
    /// and presenting `redis_cert_file` when set.
    pub(crate) fn new(config: &ClusterConfig) -> Result<RedisStore, StoreError> {
        let url = config.redis_url.as_str();
        let client = if url.starts_with("rediss://") {
            // The redis crate builds its TLS configuration with the process's default
            // crypto provider: ring, as for RTMPS and HTTPS (an error only says one is set).
            let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
            Client::build_with_tls(url, tls_files(config)?)
        } else {
            Client::open(url)
        }
        .map_err(|e| StoreError(format!("cluster.redis_url: {e}")))?;
        Ok(RedisStore {
            client,
            prefix: config.key_prefix.clone(),
            connection: Mutex::new(None),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
            acquire: Script::new(include_str!("lua/acquire.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            resolve: Script::new(include_str!("lua/resolve.lua")),
            view: Script::new(include_str!("lua/view.lua")),
            leave: Script::new(include_str!("lua/leave.lua")),
            hls: Script::new(include_str!("lua/hls.lua")),
        })
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = tokio::time::timeout(
            TIMEOUT,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| StoreError("connecting to Redis timed out".to_owned()))?
        .map_err(|e| StoreError(format!("cannot connect to Redis: {e}")))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `script` with `args` (the prefix first); a failed call drops the connection so
    /// the next one reconnects.
    async fn run(&self, script: &Script, args: &[String]) -> Result<Value, StoreError> {
        let mut connection = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let result =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async::<Value>(&mut connection))
                .await
                .map_err(|_| StoreError("Redis did not answer in time".to_owned()))
                .and_then(|r| r.map_err(|e| StoreError(format!("Redis: {e}"))));
        if result.is_err() {
            *self.connection.lock().await = None;
        }
        result
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

fn number(value: &Value) -> u64 {
    match value {
        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        other => text(other).parse().unwrap_or(0),
    }
}

fn items(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(StoreError(format!(
            "unexpected answer from Redis: {other:?}"
        ))),
    }
}

fn signed(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => text(other).parse().unwrap_or(0),
    }
}

impl Store for RedisStore {
    fn heartbeat<'a>(&'a self, member: &'a Member, beat: &'a Beat) -> StoreResult<'a, BeatReply> {
        Box::pin(async move {
            let mut args = vec![
                member.id.clone(),
                member.incarnation.clone(),
                member.rtmp.clone(),
                member.http.clone(),
                beat.ttl_ms.to_string(),
                unix_ms().to_string(),
                member.started_ms.to_string(),
                beat.token.clone(),
                if beat.sweep { "1" } else { "0" }.to_owned(),
            ];
            for (stream, epoch, idle_ms) in &beat.leases {
                args.push(stream.clone());
                args.push(epoch.to_string());
                args.push(idle_ms.to_string());
            }
            let reply = items(self.run(&self.heartbeat, &args).await?)?;
            if reply.first().map(signed) == Some(-1) {
                return Ok(BeatReply::Replaced(
                    reply.get(1).map(text).unwrap_or_default(),
                ));
            }
            if reply.len() < 3 {
                return Err(StoreError("short heartbeat answer from Redis".to_owned()));
            }
            let lost = reply[3..]
                .chunks(3)
                .filter(|c| c.len() == 3)
                .map(|c| (text(&c[0]), text(&c[1]), number(&c[2])))
                .collect();
            Ok(BeatReply::Alive {
                beat: number(&reply[0]),
                restored: number(&reply[1]),
                token: text(&reply[2]),
                lost,
            })
        })
    }

    fn acquire<'a>(
        &'a self,
        member: &'a Member,
        stream: &'a str,
        takeover: bool,
    ) -> StoreResult<'a, Acquire> {
        Box::pin(async move {
            let args = [
                stream.to_owned(),
                member.id.clone(),
                member.incarnation.clone(),
                if takeover { "1" } else { "0" }.to_owned(),
                unix_ms().to_string(),
            ];
            let reply = items(self.run(&self.acquire, &args).await?)?;
            match reply.first().map(number) {
                Some(1) if reply.len() >= 3 => Ok(Acquire::Granted {
                    epoch: number(&reply[1]),
                    previous: text(&reply[2]),
                }),
                Some(0) if reply.len() >= 4 => Ok(Acquire::Held {
                    owner: text(&reply[1]),
                    epoch: number(&reply[2]),
                    beat: number(&reply[3]),
                    idle_ms: reply.get(4).map_or(0, number),
                }),
                _ => Err(StoreError(format!(
                    "unexpected lease answer from Redis: {reply:?}"
                ))),
            }
        })
    }

    fn release<'a>(
        &'a self,
        member: &'a Member,
        leases: &'a [(String, u64)],
    ) -> StoreResult<'a, u64> {
        Box::pin(async move {
            if leases.is_empty() {
                return Ok(0);
            }
            let mut args = vec![member.id.clone(), member.incarnation.clone()];
            for (stream, epoch) in leases {
                args.push(stream.clone());
                args.push(epoch.to_string());
            }
            Ok(number(&self.run(&self.release, &args).await?))
        })
    }

    fn resolve<'a>(&'a self, streams: &'a [String]) -> StoreResult<'a, Vec<Option<Owner>>> {
        Box::pin(async move {
            if streams.is_empty() {
                return Ok(Vec::new());
            }
            let reply = items(self.run(&self.resolve, streams).await?)?;
            reply
                .into_iter()
                .map(|entry| {
                    let fields = items(entry)?;
                    Ok((fields.len() >= 4).then(|| Owner {
                        node: text(&fields[0]),
                        epoch: number(&fields[1]),
                        rtmp: text(&fields[2]),
                        http: text(&fields[3]),
                    }))
                })
                .collect()
        })
    }

    fn view(&self) -> StoreResult<'_, View> {
        Box::pin(async move {
            let mut reply = items(self.run(&self.view, &[]).await?)?.into_iter();
            let nodes = items(reply.next().unwrap_or(Value::Nil))?
                .into_iter()
                .filter_map(|n| items(n).ok())
                .filter(|f| f.len() >= 7)
                .map(|f| NodeView {
                    id: text(&f[0]),
                    incarnation: text(&f[1]),
                    rtmp: text(&f[2]),
                    http: text(&f[3]),
                    beat: number(&f[4]),
                    started_ms: number(&f[5]),
                    seen_ms: number(&f[6]),
                })
                .collect();
            let leases = items(reply.next().unwrap_or(Value::Nil))?
                .into_iter()
                .filter_map(|l| items(l).ok())
                .filter(|f| f.len() >= 5)
                .map(|f| LeaseView {
                    stream: text(&f[0]),
                    node: text(&f[1]),
                    epoch: number(&f[2]),
                    since_ms: number(&f[3]),
                    alive: number(&f[4]) == 1,
                })
                .collect();
            Ok(View { nodes, leases })
        })
    }

    fn hls_numbers<'a>(
        &'a self,
        stream: &'a str,
        container: &'a str,
    ) -> StoreResult<'a, Option<weir_media::cmaf::Continuation>> {
        Box::pin(async move {
            let args = [stream.to_owned(), container.to_owned()];
            let reply = items(self.run(&self.hls, &args).await?)?;
            Ok((reply.len() >= 4).then(|| weir_media::cmaf::Continuation {
                sequence: number(&reply[0]),
                part: number(&reply[1]),
                init: u32::try_from(number(&reply[2])).unwrap_or(u32::MAX),
                discontinuity_sequence: number(&reply[3]),
            }))
        })
    }

    fn put_hls_numbers<'a>(
        &'a self,
        member: &'a Member,
        stream: &'a str,
        epoch: u64,
        container: &'a str,
        numbers: weir_media::cmaf::Continuation,
    ) -> StoreResult<'a, bool> {
        Box::pin(async move {
            let args = [
                stream.to_owned(),
                container.to_owned(),
                member.id.clone(),
                member.incarnation.clone(),
                epoch.to_string(),
                numbers.sequence.to_string(),
                numbers.part.to_string(),
                numbers.init.to_string(),
                numbers.discontinuity_sequence.to_string(),
            ];
            Ok(number(&self.run(&self.hls, &args).await?) == 1)
        })
    }

    fn leave<'a>(&'a self, member: &'a Member) -> StoreResult<'a, bool> {
        Box::pin(async move {
            let args = [member.id.clone(), member.incarnation.clone()];
            Ok(number(&self.run(&self.leave, &args).await?) == 1)
        })
    }
}
