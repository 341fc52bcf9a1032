//! `weir-bench`: the load tool. Publishes a file in real time and opens many RTMP players in
//! one process, then prints a JSON report (players held, frame rate, bitrate, time to first
//! frame, server-added latency, disconnects, and the server's CPU and memory given its pid).

use clap::Parser;
use weir_bench::BenchOptions;

/// weir-bench: RTMP load tool. Publishes an FLV file in real time to {url}/bench-N, opens
/// players, and prints a JSON report (players held, fps, kbit/s, time to first frame,
/// server-added latency, disconnects, and the server's CPU and memory given --server-pid).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    options: BenchOptions,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("weir-bench: cannot raise the open-file limit: {err}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(weir_bench::run(cli.options))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
