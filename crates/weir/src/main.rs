//! The `weir` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use weir::{Config, Server};

/// mimalloc instead of glibc's allocator: a long-running server frees many large, short-lived
/// buffers (HLS segments and parts, GOP caches of streams that come and go), and glibc keeps
/// the space they leave fragmented and resident (a 20-minute soak grew 13 % under glibc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weir: a live streaming media server. Publish with RTMP, watch with RTMP or HTTP-FLV.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Read settings from this TOML file (every key is optional).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Listen for RTMP on this address (overrides rtmp.addr), e.g. 0.0.0.0:1935.
    #[arg(long, global = true)]
    rtmp_addr: Option<SocketAddr>,
    /// Listen for HTTP (HTTP-FLV) on this address (overrides http.addr), e.g. 0.0.0.0:8080.
    #[arg(long, global = true)]
    http_addr: Option<SocketAddr>,
    /// Listen for the admin API and metrics on this address (overrides api.addr), e.g.
    /// 127.0.0.1:8081.
    #[arg(long, global = true)]
    api_addr: Option<SocketAddr>,
    /// Log filter (overrides log.level), e.g. info, debug, weir=debug.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Run the server (the default).
    Run,
    /// Print the effective configuration as commented TOML and exit.
    Config,
    /// Print the hash of a stream key for `[apps.NAME] keys` (with no key: make a new random
    /// one). Only the hash goes in the config; the key goes to the encoder.
    HashKey {
        /// The secret stream key; a new random one when left out.
        key: Option<String>,
    },
    /// Print the query string that signs a publish or play URL with the first of
    /// `[auth] secrets` (for apps with publish or play = "signed").
    Sign {
        /// The application, e.g. live.
        #[arg(long)]
        app: String,
        /// The stream name, e.g. alice.
        #[arg(long)]
        stream: String,
        /// What the URL allows: play or publish.
        #[arg(long, default_value = "play")]
        action: String,
        /// How long the URL works: 90s, 30m, 1h, 7d, or seconds.
        #[arg(long, default_value = "1h")]
        expires_in: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("weir: {err:#}");
            return ExitCode::from(2);
        }
    };
    match cli.command.clone().unwrap_or(Command::Run) {
        Command::Config => {
            print!("{}", config.to_commented_toml());
            ExitCode::SUCCESS
        }
        Command::Run => run(config, &cli),
        Command::Sign {
            app,
            stream,
            action,
            expires_in,
        } => sign(&config, &app, &stream, &action, &expires_in),
        Command::HashKey { key } => {
            let generated = key.is_none();
            let key = key.unwrap_or_else(weir::auth::new_key);
            let hash = weir::auth::hash_key(&key);
            if generated {
                println!("key:  {key}   (give this to the encoder as its stream key; weir keeps only the hash)");
            }
            println!("hash: {hash}\n");
            println!("# in the config file, with the public name viewers watch:");
            println!("[apps.live]\npublish = \"keys\"\nkeys = [{{ hash = \"{hash}\", stream = \"alice\" }}]");
            ExitCode::SUCCESS
        }
    }
}

/// `weir sign`: the signed query string, and the URLs that use it.
fn sign(config: &Config, app: &str, stream: &str, action: &str, expires_in: &str) -> ExitCode {
    use weir::auth::signed::{signed_query, Action};
    let action = match action {
        "play" => Action::Play,
        "publish" => Action::Publish,
        other => {
            eprintln!("weir: --action must be play or publish, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let Some(secret) = config.auth.secrets.iter().find(|s| !s.is_empty()) else {
        eprintln!("weir: no secret to sign with: set auth.secrets in the config file (-c FILE)");
        return ExitCode::from(2);
    };
    let Some(seconds) = parse_duration(expires_in) else {
        eprintln!("weir: --expires-in {expires_in:?} is not a duration like 90s, 30m, 1h or 7d");
        return ExitCode::from(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = signed_query(secret, action, app, stream, now + seconds);
    println!("{query}");
    let host = "HOST";
    match action {
        Action::Play => {
            eprintln!("rtmp://{host}:1935/{app}/{stream}?{query}");
            eprintln!("http://{host}:8080/{app}/{stream}.flv?{query}");
        }
        Action::Publish => {
            eprintln!("OBS: server rtmp://{host}:1935/{app}, stream key {stream}?{query}");
        }
    }
    ExitCode::SUCCESS
}

/// `90s`, `30m`, `1h`, `7d` or plain seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let (number, unit) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        (i, 'd') => (&text[..i], 86_400),
        _ => (text, 1),
    };
    number.parse::<u64>().ok()?.checked_mul(unit)
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(addr) = cli.rtmp_addr {
        config.rtmp.addr = addr;
    }
    if let Some(addr) = cli.http_addr {
        config.http.addr = addr;
    }
    if let Some(addr) = cli.api_addr {
        config.api.addr = addr;
    }
    if let Some(level) = &cli.log {
        config.log.level.clone_from(level);
    }
    config.validate()?;
    EnvFilter::try_new(&config.log.level)
        .map_err(|err| anyhow::anyhow!("config key log.level: {err}"))?;
    Ok(config)
}

fn run(config: Config, cli: &Cli) -> ExitCode {
    let scheme = if config.http.tls { "https" } else { "http" };
    let publish_rule = config
        .app_rules("live")
        .map_or(weir::config::PublishRule::Open, |rules| rules.publish);
    let open_warning = open_publishing_warning(&config);
    let from_env = std::env::var("WEIR_LOG").ok();
    let filter = from_env
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log.level));
    let set_filter = init_logging(filter, config.log.format);
    let overrides = (cli.rtmp_addr, cli.http_addr, cli.api_addr, cli.log.clone());
    // Every viewer is a socket: take the hard limit on open files instead of the usual 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => {
            warn!("open-file limit is {limit}: at most about {limit} viewers; raise it with ulimit -n")
        }
        Ok(_) => {}
        Err(err) => warn!("cannot raise the open-file limit: {err}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("weir: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(err) => {
                error!("{err:#}");
                return ExitCode::FAILURE;
            }
        };
        banner(
            server.rtmp_addr(),
            server.http_addr(),
            server.rtmps_addr(),
            scheme,
            &publish_rule,
        );
        info!(
            "admin API and metrics: http://{}/api/v1/streams, http://{}/metrics",
            server.api_addr(),
            server.api_addr()
        );
        if let Some(warning) = open_warning {
            warn!("{warning}");
        }
        // A reload keeps what the command line set, and moves the log filter with log.level
        // (unless WEIR_LOG fixes it).
        server.set_overrides(move |config| {
            let (rtmp, http, api, log) = &overrides;
            if let Some(addr) = rtmp {
                config.rtmp.addr = *addr;
            }
            if let Some(addr) = http {
                config.http.addr = *addr;
            }
            if let Some(addr) = api {
                config.api.addr = *addr;
            }
            if let Some(level) = log {
                config.log.level.clone_from(level);
            }
        });
        if from_env.is_none() {
            let mut changes = server.config_changes();
            tokio::spawn(async move {
                let mut level = changes.borrow_and_update().log.level.clone();
                while changes.changed().await.is_ok() {
                    let new = changes.borrow_and_update().log.level.clone();
                    if new != level {
                        match EnvFilter::try_new(&new) {
                            Ok(filter) => set_filter(filter),
                            Err(err) => warn!("log.level {new:?} is no filter ({err}); kept {level:?}"),
                        }
                        level = new;
                    }
                }
            });
        }
        loop {
            tokio::select! {
                signal = next_signal() => match signal {
                    Signal::Reload => match server.reload_file() {
                        Ok(report) => info!(
                            "SIGHUP: configuration reloaded from {} (applied: {}; needs a restart: {})",
                            report.source,
                            if report.applied.is_empty() { "no change".to_owned() } else { report.applied.join(", ") },
                            if report.restart_needed.is_empty() { "nothing".to_owned() } else { report.restart_needed.join(", ") },
                        ),
                        Err(why) => error!("SIGHUP: reload refused, the current configuration stays: {why}"),
                    },
                    Signal::Stop => break,
                },
                () = server.drain_requested() => break,
            }
        }
        info!("shutting down");
        server.shutdown().await;
        info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Logs to stderr: text with colours only when stderr is a terminal, or one JSON object per
/// line (`log.format = "json"`); the same field names either way. Gives the function that
/// replaces the filter (a reload of `log.level`).
fn init_logging(
    filter: EnvFilter,
    format: weir::config::LogFormat,
) -> impl Fn(EnvFilter) + Send + Sync + 'static {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        weir::config::LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        weir::config::LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    move |filter| {
        if let Err(err) = handle.reload(filter) {
            eprintln!("weir: cannot change the log filter: {err}");
        }
    }
}

/// A warning when anyone on a network may publish: the RTMP listener is not on loopback and
/// apps not configured otherwise take any publisher.
fn open_publishing_warning(config: &Config) -> Option<String> {
    use weir::config::PublishRule;
    if config.rtmp.addr.ip().is_loopback() {
        return None;
    }
    let default_open =
        !matches!(config.apps.get("default"), Some(rules) if rules.publish != PublishRule::Open);
    let open_apps: Vec<&str> = config
        .apps
        .iter()
        .filter(|(name, rules)| *name != "default" && rules.publish == PublishRule::Open)
        .map(|(name, _)| name.as_str())
        .collect();
    let who = match (default_open, open_apps.is_empty()) {
        (true, _) => "any application".to_owned(),
        (false, true) => return None,
        (false, false) => format!("applications {}", open_apps.join(", ")),
    };
    Some(format!(
        "publishing is open: anyone who can reach {} may publish to {who} under any name. \
         To require stream keys set [apps.default] publish = \"keys\" with keys from `weir hash-key` \
         (or \"signed\" / \"webhook\"); see \"Securing weir\" in the README",
        config.rtmp.addr
    ))
}

fn banner(
    addr: SocketAddr,
    http: SocketAddr,
    rtmps: Option<SocketAddr>,
    scheme: &str,
    publish_rule: &weir::config::PublishRule,
) {
    let host_of = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            "HOST".to_owned()
        } else {
            addr.ip().to_string()
        }
    };
    let host = host_of(addr);
    let port = addr.port();
    info!(
        "weir {} listening for RTMP on {addr}",
        env!("CARGO_PKG_VERSION")
    );
    let key = match publish_rule {
        weir::config::PublishRule::Open => "any Stream Key",
        weir::config::PublishRule::Keys => "a Stream Key from apps.live.keys",
        weir::config::PublishRule::Signed => "a signed Stream Key (weir sign --action publish)",
        weir::config::PublishRule::Webhook => "a Stream Key the on_publish webhook accepts",
    };
    info!("publish: OBS Server rtmp://{host}:{port}/live with {key}, or: ffmpeg -re -i in.flv -c copy -f flv rtmp://{host}:{port}/live/KEY");
    info!("watch:   ffplay rtmp://{host}:{port}/live/KEY   (VLC: Media > Open Network Stream, same URL)");
    if let Some(tls) = rtmps {
        info!(
            "publish or watch over TLS: rtmps://{}:{}/live/KEY",
            host_of(tls),
            tls.port()
        );
    }
    let (http_host, http_port) = (host_of(http), http.port());
    info!(
        "watch over HTTP: {scheme}://{http_host}:{http_port}/live/KEY/index.m3u8 (HLS: Safari, hls.js, VLC) \
         or {scheme}://{http_host}:{http_port}/live/KEY.flv (HTTP-FLV, mpegts.js)"
    );
    info!(
        "watch in a browser: {scheme}://{http_host}:{http_port}/ (player page: every stream, every format)"
    );
}

/// What a signal asks for.
enum Signal {
    /// SIGHUP: re-read the configuration file.
    Reload,
    /// SIGTERM or Ctrl-C: drain and stop.
    Stop,
}

/// The next signal weir acts on.
async fn next_signal() -> Signal {
    #[cfg(unix)]
    {
        use std::sync::OnceLock;
        use tokio::signal::unix::{signal, SignalKind};
        // Registered once: a signal that arrives between two waits is not lost.
        static STREAMS: OnceLock<
            tokio::sync::Mutex<(
                Option<tokio::signal::unix::Signal>,
                Option<tokio::signal::unix::Signal>,
            )>,
        > = OnceLock::new();
        let streams = STREAMS.get_or_init(|| {
            tokio::sync::Mutex::new((
                signal(SignalKind::terminate()).ok(),
                signal(SignalKind::hangup()).ok(),
            ))
        });
        let mut guard = streams.lock().await;
        let (term, hup) = &mut *guard;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Signal::Stop,
            Some(()) = async { match term { Some(t) => t.recv().await, None => std::future::pending().await } } => Signal::Stop,
            Some(()) = async { match hup { Some(h) => h.recv().await, None => std::future::pending().await } } => Signal::Reload,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_publishing_on_a_network_address_is_warned_about() {
        let mut config = Config::default();
        let warning = open_publishing_warning(&config).expect("0.0.0.0 and no rules");
        assert!(warning.contains("any application") && warning.contains("weir hash-key"));
        config.rtmp.addr = "127.0.0.1:1935".parse().unwrap();
        assert!(open_publishing_warning(&config).is_none(), "loopback only");
        config.rtmp.addr = "0.0.0.0:1935".parse().unwrap();
        let keys = weir::config::AppRules {
            publish: weir::config::PublishRule::Keys,
            ..Default::default()
        };
        config.apps.insert("default".to_owned(), keys);
        assert!(
            open_publishing_warning(&config).is_none(),
            "keys everywhere"
        );
        config
            .apps
            .insert("test".to_owned(), weir::config::AppRules::default());
        let warning = open_publishing_warning(&config).expect("one open app");
        assert!(warning.contains("applications test"), "{warning}");
    }
}
