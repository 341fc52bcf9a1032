//! The `weir` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use weir::{Config, Server};

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
    /// Log filter (overrides log.level), e.g. info, debug, weir=debug.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
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
    match cli.command.unwrap_or(Command::Run) {
        Command::Config => {
            print!("{}", config.to_commented_toml());
            ExitCode::SUCCESS
        }
        Command::Run => run(config),
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
    if let Some(level) = &cli.log {
        config.log.level.clone_from(level);
    }
    config.validate()?;
    EnvFilter::try_new(&config.log.level)
        .map_err(|err| anyhow::anyhow!("config key log.level: {err}"))?;
    Ok(config)
}

fn run(config: Config) -> ExitCode {
    let filter =
        EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    tracing_subscriber::fmt().with_env_filter(filter).init();
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
        banner(server.rtmp_addr(), server.http_addr());
        wait_for_signal().await;
        info!("shutting down");
        server.shutdown().await;
        info!("stopped");
        ExitCode::SUCCESS
    })
}

fn banner(addr: SocketAddr, http: SocketAddr) {
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
    info!("publish: OBS Server rtmp://{host}:{port}/live with any Stream Key, or: ffmpeg -re -i in.flv -c copy -f flv rtmp://{host}:{port}/live/KEY");
    info!("watch:   ffplay rtmp://{host}:{port}/live/KEY   (VLC: Media > Open Network Stream, same URL)");
    let (http_host, http_port) = (host_of(http), http.port());
    info!(
        "watch over HTTP: http://{http_host}:{http_port}/live/KEY/index.m3u8 (HLS: Safari, hls.js, VLC) \
         or http://{http_host}:{http_port}/live/KEY.flv (HTTP-FLV, mpegts.js)"
    );
    info!(
        "watch in a browser: http://{http_host}:{http_port}/ (player page: every stream, every format)"
    );
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
