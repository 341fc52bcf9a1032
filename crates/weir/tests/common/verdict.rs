//! Verdicts for bad-input cases: each case ends in an [`Outcome`] (how the server reacted,
//! the logged close reason, the time to close) or a failure message naming the case.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::logs::Logs;
use super::raw_client::RawClient;

/// Handshake (and connect) timeout of the servers under test.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after its bad bytes a connection must be closed when no timeout is involved.
pub const PROMPT_CLOSE: Duration = Duration::from_millis(1500);
/// Allowance over a timeout for the close to be seen.
pub const TIMEOUT_MARGIN: Duration = Duration::from_millis(1500);
/// How long to wait for the close log line once the socket is closed (it is written just
/// after the socket is shut down).
pub const LOG_WAIT: Duration = Duration::from_secs(3);

/// What the server did with one bad input.
pub struct Outcome {
    /// The case.
    pub name: &'static str,
    /// What the server did, as seen by the client.
    pub reaction: String,
    /// The `reason=` of the server's close log line.
    pub reason: String,
    /// From the TCP connect to the close.
    pub elapsed: Duration,
}

/// What a case expects from the server.
pub enum Expected {
    /// Closed within [`PROMPT_CLOSE`] of `since`, with a reason containing one of these.
    Prompt(&'static [&'static str]),
    /// Closed by a timeout: at `HANDSHAKE_TIMEOUT` (± margin) after the connection started.
    Timeout(&'static str),
}

/// Waits for the server to close `client`, checks the log line and the time.
pub async fn expect_closed(
    name: &'static str,
    mut client: RawClient,
    logs: &Logs,
    mark: usize,
    since: Instant,
    expected: Expected,
) -> Result<Outcome, String> {
    let (bound, reasons): (Instant, Vec<&str>) = match &expected {
        Expected::Prompt(reasons) => (since + PROMPT_CLOSE, reasons.to_vec()),
        Expected::Timeout(reason) => (
            client.started() + HANDSHAKE_TIMEOUT + TIMEOUT_MARGIN,
            vec![*reason],
        ),
    };
    let left = bound.saturating_duration_since(Instant::now());
    let (closed, at, _) = client
        .wait_closed(left)
        .await
        .map_err(|e| format!("{name}: not closed in time: {e}"))?;
    let elapsed = at - client.started();
    if let Expected::Timeout(_) = expected {
        if elapsed + Duration::from_millis(100) < HANDSHAKE_TIMEOUT {
            return Err(format!(
                "{name}: closed after {elapsed:?}, before the {HANDSHAKE_TIMEOUT:?} timeout"
            ));
        }
    }
    let reason = close_reason(name, logs, mark, client.port()).await?;
    if !reasons.iter().any(|r| reason.contains(r)) {
        return Err(format!(
            "{name}: close reason {reason:?} is none of {reasons:?}"
        ));
    }
    Ok(Outcome {
        name,
        reaction: format!("closed ({closed:?})"),
        reason,
        elapsed,
    })
}

/// The logged close reason for `port`, or an error naming the case.
pub async fn close_reason(
    name: &str,
    logs: &Logs,
    mark: usize,
    port: u16,
) -> Result<String, String> {
    logs.close_reason(mark, port, LOG_WAIT)
        .await
        .ok_or_else(|| {
            format!(
            "{name}: no \"rtmp connection closed\" line with peer=127.0.0.1:{port} and a reason; \
             log since the case started:\n{}",
            logs.lines_since(mark).join("\n")
        )
        })
}

/// Closes our side (FIN) of a connection the server kept open and checks it then closes its
/// side with "peer closed the connection".
pub async fn close_from_client(
    name: &'static str,
    mut client: RawClient,
    logs: &Logs,
    mark: usize,
    reaction: String,
) -> Result<Outcome, String> {
    let _ = client.shutdown_write().await;
    let since = Instant::now();
    let mut outcome = expect_closed(
        name,
        client,
        logs,
        mark,
        since,
        Expected::Prompt(&["peer closed the connection"]),
    )
    .await?;
    outcome.reaction = reaction;
    Ok(outcome)
}

/// A connected client (handshake + `connect` to `live`), for cases that break later.
pub async fn connected(addr: SocketAddr) -> Result<RawClient, String> {
    let mut client = RawClient::connect(addr).await;
    client.handshake().await?;
    client.connect_app("live").await?;
    Ok(client)
}

pub fn spawn_case(
    set: &mut JoinSet<Result<Outcome, String>>,
    case: impl Future<Output = Result<Outcome, String>> + Send + 'static,
) {
    set.spawn(case);
}

pub async fn collect(mut set: JoinSet<Result<Outcome, String>>) -> (Vec<Outcome>, Vec<String>) {
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(failure)) => failures.push(failure),
            Err(panic) => failures.push(format!("a case panicked: {panic}")),
        }
    }
    outcomes.sort_by_key(|o| o.elapsed);
    (outcomes, failures)
}

pub fn print_table(title: &str, outcomes: &[Outcome]) {
    eprintln!("{title}:");
    for o in outcomes {
        eprintln!(
            "  {:<52} | {:<70} | {:<60} | {:>6.0} ms",
            o.name,
            o.reaction,
            o.reason,
            o.elapsed.as_secs_f64() * 1000.0
        );
    }
}
