//! Hot reload (SIGHUP, `POST /api/v1/reload`): a new configuration applies to new
//! connections and sessions at once, and nobody is disconnected.
//!
//! What a reload changes: the access rules (`[apps]`, `[auth]`: keys, signatures, webhooks,
//! IP rules, app limits, takeover), `rtmp.max_connections_per_ip`,
//! `rtmp.max_connection_rate_per_ip`, `[proxy]` and the PROXY-protocol switches, the
//! certificate files (`rtmps.cert_file`, `key_file`, `certificates`), `[publish]`,
//! `[playback]`, `api.tokens` and `log.level` (the binary follows it), and the RTMP, RTMPS and
//! HTTP addresses (the new one is bound first; the old socket closes and its connections go
//! on). What needs a restart (reported, not applied): the admin address, turning RTMPS or
//! HTTPS on or off, the RTMP
//! session limits and timeouts, `[streams]`, `[hls]`, `log.format`. A configuration that does
//! not validate, or whose certificates cannot be loaded, is refused as a whole with the same
//! error as at start, and the current one stays.

use std::sync::Arc;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::listeners::{self, Kind};
use crate::policy::{OpenPolicy, Policy};
use crate::rtmp::Context;

/// What a reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// The configuration file read (empty when a configuration was handed over directly).
    pub source: String,
    /// Sections or keys whose new values now apply.
    pub applied: Vec<String>,
    /// Keys whose new values take effect only at the next start.
    pub restart_needed: Vec<String>,
}

/// Re-reads the file the server was started from and applies it.
pub(crate) fn from_file(context: &Arc<Context>) -> Result<Report, String> {
    let Some(path) = context.live().source.clone() else {
        return Err(
            "weir was started without a config file (--config): there is nothing to re-read"
                .to_owned(),
        );
    };
    let config = Config::from_file(&path).map_err(|e| e.to_string())?;
    apply(context, config)
}

/// Applies `new` (see the module docs).
pub(crate) fn apply(context: &Arc<Context>, mut new: Config) -> Result<Report, String> {
    if let Some(overrides) = context
        .overrides
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        overrides(&mut new);
    }
    new.validate().map_err(|e| e.to_string())?;
    let old = context.live();
    if new.source.is_none() {
        new.source.clone_from(&old.source);
    }
    let start = &context.config;
    let mut report = Report {
        source: new
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ..Report::default()
    };
    // The fallible part first: nothing changes if the certificates cannot be loaded.
    let new_files = new.rtmps.certificate_files();
    match (&context.certificates, new.rtmps.enabled()) {
        (Some(certificates), true) => {
            if certificates.files() != new_files {
                certificates
                    .replace(&new_files)
                    .map_err(|e| format!("rtmps: {e}"))?;
                report.applied.push("rtmps certificates".to_owned());
            }
        }
        (None, false) => {}
        _ => report.restart_needed.push("rtmps (on/off)".to_owned()),
    }
    // Listeners that move: bound now (an address that cannot be had refuses the reload).
    let mut moves = Vec::new();
    for (kind, addr, on) in [
        (Kind::Rtmp, new.rtmp.addr, true),
        (Kind::Http, new.http.addr, true),
        (
            Kind::Rtmps,
            new.rtmps.addr,
            new.rtmps.enabled() && context.certificates.is_some(),
        ),
    ] {
        let current = listeners::configured(context, kind);
        if on && current.is_some_and(|current| current != addr) {
            let listener = crate::server::listen(addr)
                .map_err(|e| format!("{}: cannot listen on {addr}: {e}", kind.key()))?;
            moves.push((kind, addr, listener));
        }
    }
    let mut changed = |name: &str, differs: bool| {
        if differs {
            report.applied.push(name.to_owned());
        }
    };
    changed("apps", old.apps != new.apps);
    changed("auth", old.auth != new.auth);
    changed("proxy", old.proxy != new.proxy);
    changed("publish", old.publish != new.publish);
    changed("playback", old.playback != new.playback);
    changed("api.tokens", old.api.tokens != new.api.tokens);
    changed("log.level", old.log.level != new.log.level);
    changed(
        "rtmp.max_connections_per_ip",
        old.rtmp.max_connections_per_ip != new.rtmp.max_connections_per_ip,
    );
    changed(
        "rtmp.max_connection_rate_per_ip",
        old.rtmp.max_connection_rate_per_ip != new.rtmp.max_connection_rate_per_ip,
    );
    changed(
        "rtmp.proxy_protocol / http.proxy_protocol",
        (old.rtmp.proxy_protocol, old.http.proxy_protocol)
            != (new.rtmp.proxy_protocol, new.http.proxy_protocol),
    );
    if context.policy_from_config && (old.apps != new.apps || old.auth != new.auth) {
        let policy: Arc<dyn Policy> = if new.apps.is_empty() {
            Arc::new(OpenPolicy)
        } else {
            Arc::new(
                crate::auth::ConfigPolicy::new(&new.apps, &new.auth.secrets)
                    .with_metrics(Arc::clone(context.hub.metrics())),
            )
        };
        context.set_policy(policy);
    }
    context.per_ip.set(new.rtmp.max_connections_per_ip);
    context.rate.set(new.rtmp.max_connection_rate_per_ip);
    context.proxies.update(&new);
    let fixed = |name: &str, differs: bool, report: &mut Report| {
        if differs {
            report.restart_needed.push(name.to_owned());
        }
    };
    let (s, n) = (start, &new);
    fixed("api.addr", s.api.addr != n.api.addr, &mut report);
    fixed("cluster", s.cluster != n.cluster, &mut report);
    fixed("http.tls", s.http.tls != n.http.tls, &mut report);
    let session = |a: &Config| {
        let r = &a.rtmp;
        (
            r.chunk_size,
            r.max_connections,
            r.handshake_timeout_secs,
            r.idle_timeout_secs,
            r.write_timeout_secs,
            r.request_timeout_secs,
            r.max_message_size,
            r.max_chunk_streams,
        )
    };
    let differs = session(s) != session(n);
    fixed("rtmp session limits and timeouts", differs, &mut report);
    fixed("streams", s.streams != n.streams, &mut report);
    fixed("hls", s.hls != n.hls, &mut report);
    fixed("log.format", s.log.format != n.log.format, &mut report);
    context.live.send_replace(Arc::new(new));
    for (kind, addr, listener) in moves {
        match listeners::start(context, kind, addr, listener) {
            Ok(local) => report
                .applied
                .push(format!("{} (now listening on {local})", kind.key())),
            Err(err) => warn!("{}: the new listener did not start: {err}", kind.key()),
        }
    }
    info!(
        source = %report.source,
        applied = %report.applied.join(", "),
        "configuration reloaded"
    );
    if !report.restart_needed.is_empty() {
        warn!(
            "configuration reloaded, but these changes take effect only at the next start: {}",
            report.restart_needed.join(", ")
        );
    }
    Ok(report)
}
