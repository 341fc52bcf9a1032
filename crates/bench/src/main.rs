//! `weir-bench`: the load tool. Publishes a file in real time and opens many RTMP players in
//! one process, then prints a JSON report (players held, frame rate, bitrate, time to first
//! frame, server-added latency, disconnects, and the server's CPU and memory given its pid).
//! Subcommands run the endurance scenarios (`soak`, `faults …`) and the helpers they start
//! as processes of their own (`publish`, `viewers`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weir_bench::faults::{self, FloodOptions, Kill9Options, OverloadOptions, ResetOptions};
use weir_bench::faults::{StopOptions, Target, ViewerProcesses, WrapOptions};
use weir_bench::soak::{self, SoakOptions};
use weir_bench::BenchOptions;

mod helpers;

/// weir-bench: RTMP load tool. Publishes an FLV file in real time to {url}/bench-N, opens
/// players, and prints a JSON report (players held, fps, kbit/s, time to first frame,
/// server-added latency, disconnects, and the server's CPU and memory given --server-pid).
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: BenchOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Endurance soak: publishers restarting, RTMP, HTTP-FLV and HLS viewers churning, the
    /// server's RSS and open files sampled; prints a summary, exits 1 on failure.
    Soak {
        #[command(flatten)]
        options: SoakOptions,
        /// Write the JSON report (with every sample) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One fault scenario with its pass/fail criterion; prints `PASS …` or `FAIL …`,
    /// exits 1 on failure.
    Faults {
        #[command(subcommand)]
        scenario: Fault,
        /// Write the JSON outcome here.
        #[arg(long, global = true)]
        out: Option<PathBuf>,
    },
    /// Publish one stream (`--url rtmp://host/app/stream`) until killed or `--seconds`.
    Publish {
        /// Full URL with the stream key.
        #[arg(long)]
        url: String,
        /// FLV file to loop.
        #[arg(long)]
        file: PathBuf,
        /// First timestamp, ms (wrapping).
        #[arg(long, default_value_t = 0)]
        start_ms: u32,
        /// Pad video to about this many kbit/s.
        #[arg(long)]
        kbps: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Play one stream with `--count` RTMP viewers; prints `ready K` once K played, and on
    /// a line on stdin prints `cut C of N` (viewers whose connection the server closed).
    Viewers {
        /// Full URL with the stream key.
        #[arg(long)]
        url: String,
        /// Viewers.
        #[arg(long)]
        count: usize,
    },
}

#[derive(Subcommand, Debug)]
enum Fault {
    /// SIGKILL a publisher process mid-GOP, republish, check the viewers.
    Kill9 {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: Kill9Options,
    },
    /// Reset many viewers at once (SO_LINGER 0).
    Reset {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: ResetOptions,
    },
    /// Flood the server with connections at a multiple of max_connections.
    Flood {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: FloodOptions,
    },
    /// SIGSTOP viewer processes and check they are cut.
    Sigstop {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: StopOptions,
        /// Child processes holding the viewers.
        #[arg(long, default_value_t = 5)]
        processes: usize,
    },
    /// A 50 Mbit/s publisher whose viewers read a few Mbit/s.
    Overload {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: OverloadOptions,
    },
    /// Publishers starting just below 2^31 and 2^32 ms, played through the wrap on RTMP,
    /// HTTP-FLV and HLS.
    Wrap {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        options: WrapOptions,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("weir-bench: cannot raise the open-file limit: {err}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => {
            let report = runtime.block_on(weir_bench::run(cli.options))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Soak { options, out }) => {
            let report = runtime.block_on(soak::run(options))?;
            if let Some(path) = out {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            print!("{}", soak::summary(&report));
            Ok(verdict(report.pass))
        }
        Some(Command::Faults { scenario, out }) => {
            let outcome = runtime.block_on(fault(scenario))?;
            if let Some(path) = out {
                std::fs::write(path, serde_json::to_string_pretty(&outcome)?)?;
            }
            println!("{}", outcome.line());
            Ok(verdict(outcome.pass))
        }
        Some(Command::Publish {
            url,
            file,
            start_ms,
            kbps,
            seconds,
        }) => runtime.block_on(helpers::publish(&url, &file, start_ms, kbps, seconds)),
        Some(Command::Viewers { url, count }) => runtime.block_on(helpers::viewers(&url, count)),
    }
}

fn verdict(pass: bool) -> ExitCode {
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn fault(scenario: Fault) -> anyhow::Result<faults::Outcome> {
    let me = std::env::current_exe()?;
    match scenario {
        Fault::Kill9 { target, options } => {
            let mut cmd = std::process::Command::new(&me);
            cmd.arg("publish")
                .arg("--url")
                .arg(format!("{}/fault-kill9", target.url.trim_end_matches('/')))
                .arg("--file")
                .arg(&target.file);
            faults::kill9(&target, &options, cmd).await
        }
        Fault::Reset { target, options } => faults::reset(&target, &options).await,
        Fault::Flood { target, options } => faults::flood(&target, &options).await,
        Fault::Sigstop {
            target,
            options,
            processes,
        } => {
            let url = format!("{}/fault-stop", target.url.trim_end_matches('/'));
            let spawn = ViewerProcesses {
                processes,
                command: Box::new(move |count| {
                    let mut cmd = std::process::Command::new(&me);
                    cmd.arg("viewers")
                        .arg("--url")
                        .arg(&url)
                        .arg("--count")
                        .arg(count.to_string());
                    cmd
                }),
            };
            faults::sigstop(&target, &options, Some(spawn)).await
        }
        Fault::Overload { target, options } => faults::overload(&target, &options).await,
        Fault::Wrap { target, options } => faults::wrap(&target, &options).await,
    }
}
