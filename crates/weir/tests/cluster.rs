//! The origin/edge cluster on Redis, with three weir processes and a test-owned redis-server
//! on loopback: edges pull once and add little latency, 500 cold plays make one pull, a
//! killed origin fails over to the node the encoder reconnects to without dropping the edges'
//! viewers, a paused origin is fenced when it comes back, racing publishers of one stream on
//! two nodes leave exactly one winner, a Redis outage (and an empty restart) drops nothing,
//! a drain gives the leases back at once, nodes reach a TLS Redis with a private CA and
//! client certificates.
//!
//! The outage lasts `WEIR_CLUSTER_OUTAGE_SECS` (8 s here; BENCHMARKS.md has the 60 s run).

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::cluster::{percentile, play, publish, tail, Node, PlayerLog, PublisherLog, Seen};
use common::fixtures::small_fixture;
use common::redis::RedisServer;
use common::TestDir;
use tokio::sync::watch;
use weir_media::flv_file::FlvTag;

/// The tests of this file run one at a time (timings are asserted; the machine has 2 cores).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn tags() -> Arc<Vec<FlvTag>> {
    Arc::new(weir_bench::load(&small_fixture().path).expect("fixture tags"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Three nodes on one Redis.
struct Cluster {
    dir: TestDir,
    redis: RedisServer,
    a: Node,
    b: Node,
    c: Node,
}

fn cluster(name: &str) -> Cluster {
    let dir = TestDir::new(name);
    let redis = RedisServer::start(dir.path());
    let a = Node::start(dir.path(), "a", &redis.url(), "");
    let b = Node::start(dir.path(), "b", &redis.url(), "");
    let c = Node::start(dir.path(), "c", &redis.url(), "");
    // Every node has beaten once.
    a.wait_for("three nodes in Redis", Duration::from_secs(5), || {
        redis.cmd(&["SCARD", "weir:nodes"]) == "3"
    });
    Cluster {
        dir,
        redis,
        a,
        b,
        c,
    }
}

/// Starts `n` players of `stream` on `node`.
fn players(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    stream: &str,
    n: usize,
    stop: &watch::Receiver<bool>,
) -> Vec<Arc<Mutex<PlayerLog>>> {
    (0..n)
        .map(|_| {
            let log = Arc::new(Mutex::new(PlayerLog::default()));
            rt.spawn(play(node.url(stream), Arc::clone(&log), stop.clone()));
            log
        })
        .collect()
}

/// Starts a publisher of `stream` on `node`.
fn publisher(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    stream: &str,
    stop: &watch::Receiver<bool>,
) -> Arc<Mutex<PublisherLog>> {
    let log = Arc::new(Mutex::new(PublisherLog::default()));
    rt.spawn(publish(
        node.url(stream),
        tags(),
        Arc::clone(&log),
        stop.clone(),
    ));
    log
}

/// Calls the nodes made to Redis since it started: every operation is one script
/// (`EVALSHA`, or `EVAL`/`SCRIPT LOAD` the first time); the commands the scripts run inside
/// are not calls of their own.
fn redis_calls(redis: &RedisServer) -> u64 {
    redis
        .cmd(&["INFO", "commandstats"])
        .lines()
        .filter(|l| {
            ["cmdstat_evalsha:", "cmdstat_eval:", "cmdstat_script"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Starts a publisher of `stream` on `node` and waits until the node has it live.
fn live_on(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    stream: &str,
    stop: &watch::Receiver<bool>,
) -> Arc<Mutex<PublisherLog>> {
    let log = publisher(rt, node, stream, stop);
    let path = format!("live/{stream}");
    node.wait_for("the stream published", Duration::from_secs(10), || {
        node.published(&path)
    });
    log
}

/// Whether a player's timestamps never go back, per kind (audio and video interleave).
fn monotonic(frames: &[Seen]) -> Result<(), String> {
    for video in [true, false] {
        let mut last = 0u32;
        for f in frames.iter().filter(|f| f.video == video) {
            if f.timestamp < last {
                return Err(format!(
                    "{} timestamp went back from {last} to {}",
                    if video { "video" } else { "audio" },
                    f.timestamp
                ));
            }
            last = f.timestamp;
        }
    }
    Ok(())
}

/// The longest pause between two frames a player got after `from`.
fn longest_gap(frames: &[Seen], from: Instant) -> Duration {
    frames
        .windows(2)
        .filter(|w| w[0].at >= from)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap_or_default()
}

#[test]
fn edges_pull_once_from_the_origin_start_at_once_and_add_little_latency() {
    let _serial = serial();
    let cl = cluster("cluster-edges");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let publisher = live_on(&rt, &cl.a, "cam", &stopped);
    std::thread::sleep(Duration::from_millis(1500));
    let reference = players(&rt, &cl.a, "cam", 1, &stopped);
    std::thread::sleep(Duration::from_millis(300));
    let on_b = players(&rt, &cl.b, "cam", 10, &stopped);
    let on_c = players(&rt, &cl.c, "cam", 10, &stopped);
    std::thread::sleep(Duration::from_secs(5));

    // One upstream per edge: the origin has three players (the reference and two pulls).
    let origin_players = cl.a.rtmp_viewers("live/cam");
    let a_log = cl.a.log();
    let pulls_seen = a_log
        .lines()
        .filter(|l| l.contains("play started") && l.contains("live/cam"))
        .count();
    assert_eq!(
        (origin_players, pulls_seen),
        (3, 3),
        "the origin has the reference player and one pull per edge\n{}",
        tail(&a_log, 30)
    );
    for edge in [&cl.b, &cl.c] {
        let view = edge.api("/api/v1/cluster");
        assert_eq!(view["pulls"][0]["stream"], "live/cam", "{view}");
        assert_eq!(view["pulls"][0]["origin"], "a", "{view}");
    }
    let view = cl.a.api("/api/v1/cluster");
    assert_eq!(view["leases"][0]["node"], "a", "{view}");
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3, "{view}");

    // First media within 300 ms of the play's answer, on every edge viewer.
    let mut first_ms = Vec::new();
    for log in on_b.iter().chain(&on_c) {
        let log = lock(log);
        assert!(log.ended.is_none(), "an edge viewer ended: {:?}", log.ended);
        let asked = log.asked_at.expect("played");
        let first = log.frames.first().expect("media on the edge").at;
        first_ms.push(first.duration_since(asked).as_secs_f64() * 1000.0);
    }
    let worst_first = first_ms.iter().cloned().fold(0.0, f64::max);
    assert!(
        worst_first <= 300.0,
        "first media after play: {first_ms:?} ms"
    );

    // Latency per hop: the same frame (by payload) at an edge viewer vs at the origin's.
    let reference = lock(&reference[0]);
    let at_origin: std::collections::HashMap<u64, Instant> =
        reference.frames.iter().map(|f| (f.hash, f.at)).collect();
    let mut hop_ms = Vec::new();
    for log in on_b.iter().chain(&on_c) {
        let log = lock(log);
        // Live frames only: those of the GOP cache reached the origin's viewer earlier.
        let live_from = log.played_at.unwrap() + Duration::from_millis(500);
        for f in log.frames.iter().filter(|f| f.at >= live_from) {
            if let Some(origin_at) = at_origin.get(&f.hash) {
                hop_ms.push(f.at.saturating_duration_since(*origin_at).as_secs_f64() * 1000.0);
            }
        }
    }
    assert!(hop_ms.len() > 1000, "{} frames compared", hop_ms.len());
    let p50 = percentile(&mut hop_ms, 50.0);
    let p99 = percentile(&mut hop_ms, 99.0);
    eprintln!(
        "cluster edges: first media after play worst {worst_first:.1} ms; added latency per hop p50 {p50:.2} ms p99 {p99:.2} ms over {} frames",
        hop_ms.len()
    );
    assert!(
        p99 <= 5.0,
        "added latency per hop p99 {p99:.2} ms (p50 {p50:.2})"
    );
    // Redis load in the steady state: every command the three nodes sent for 5 s.
    let before = redis_calls(&cl.redis);
    std::thread::sleep(Duration::from_secs(5));
    let per_second = (redis_calls(&cl.redis) - before) as f64 / 5.0;
    eprintln!("cluster edges: Redis load {per_second:.1} calls/s for 3 nodes, 1 stream, 2 pulls");
    assert!(
        per_second <= 0.5 + 2.0 * 3.0 + 1.0,
        "{per_second} Redis calls a second"
    );
    let (status, metrics) = common::access::http_get(cl.b.api, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(status.contains("200"));
    for line in [
        "weir_cluster_pulls{node=\"b\"} 1",
        "weir_cluster_redis_up{node=\"b\"} 1",
        "weir_cluster_leases{node=\"b\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    drop(reference);
    stop.send_replace(true);
    assert!(lock(&publisher).ended.is_none());
}

#[test]
fn five_hundred_cold_plays_on_one_edge_make_one_pull() {
    let _serial = serial();
    let cl = cluster("cluster-cold");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let _publisher = live_on(&rt, &cl.a, "cam", &stopped);
    std::thread::sleep(Duration::from_millis(1000));
    let viewers = players(&rt, &cl.b, "cam", 500, &stopped);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let with_media = viewers
            .iter()
            .filter(|l| !lock(l).frames.is_empty())
            .count();
        if with_media == viewers.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{with_media} of 500 viewers got media; ended: {:?}\n{}",
            viewers.iter().filter_map(|l| lock(l).ended.clone()).next(),
            tail(&cl.b.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pulls =
        cl.a.log()
            .lines()
            .filter(|l| l.contains("play started") && l.contains("live/cam"))
            .count();
    assert_eq!(
        pulls,
        1,
        "one upstream pull for 500 viewers\n{}",
        tail(&cl.a.log(), 20)
    );
    assert_eq!(cl.a.rtmp_viewers("live/cam"), 1);
    stop.send_replace(true);
}

#[test]
fn a_killed_origin_fails_over_to_the_node_the_encoder_reconnects_to() {
    let _serial = serial();
    let mut cl = cluster("cluster-kill");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let (stop_first, first_stopped) = watch::channel(false);
    let _first = live_on(&rt, &cl.a, "cam", &first_stopped);
    let on_b = players(&rt, &cl.b, "cam", 10, &stopped);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        on_b.iter().all(|l| !lock(l).frames.is_empty()),
        "media on B"
    );

    let epoch_a: u64 = cl
        .redis
        .cmd(&["HGET", "weir:lease:live/cam", "epoch"])
        .parse()
        .unwrap();
    let killed = Instant::now();
    cl.a.child.kill();
    stop_first.send_replace(true);
    // The expiry as Redis sees it: the time left counted from before the question (after
    // it would add the round trip, and a kill right after a heartbeat would read 3 s + it).
    let asked = Instant::now();
    let ttl_ms: u64 = cl.redis.cmd(&["PTTL", "weir:node:a"]).parse().unwrap();
    let expires = asked + Duration::from_millis(ttl_ms);
    // The encoder reconnects to C at once; C waits for A's heartbeat to expire.
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(6), || {
        let log = lock(&second);
        log.accepted_at.is_some() || log.ended.is_some()
    });
    let (accepted, refusal) = {
        let log = lock(&second);
        (log.accepted_at, log.ended.clone())
    };
    let accepted =
        accepted.unwrap_or_else(|| panic!("refused: {refusal:?}\n{}", tail(&cl.c.log(), 20)));
    let detected = expires.duration_since(killed);
    let after_expiry = accepted.saturating_duration_since(expires);
    assert!(
        accepted + Duration::from_millis(30) >= expires,
        "C took the lease {:?} before A's heartbeat expired",
        expires.duration_since(accepted)
    );
    assert!(
        detected <= Duration::from_secs(3),
        "dead origin found after {detected:?}"
    );
    assert!(
        after_expiry <= Duration::from_millis(200),
        "accepted {after_expiry:?} after A's heartbeat expired"
    );
    std::thread::sleep(Duration::from_secs(3));
    let first_key = lock(&second)
        .first_key_at
        .expect("C's first key frame sent");
    let mut resumed_ms = Vec::new();
    for log in &on_b {
        let log = lock(log);
        assert!(
            log.ended.is_none(),
            "a viewer on B was disconnected: {:?}",
            log.ended
        );
        monotonic(&log.frames).unwrap_or_else(|e| panic!("a viewer on B: {e}"));
        let resumed = log
            .frames
            .iter()
            .find(|f| f.at > accepted)
            .expect("media from C on B")
            .at;
        resumed_ms.push(resumed.saturating_duration_since(first_key).as_secs_f64() * 1000.0);
    }
    let worst = resumed_ms.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "cluster failover: A's heartbeat expired {:.0} ms after kill -9; C accepted {:.0} ms after expiry; B's viewers resumed {worst:.0} ms after C's first key frame (0 of 10 disconnected)",
        detected.as_secs_f64() * 1000.0,
        after_expiry.as_secs_f64() * 1000.0
    );
    assert!(
        worst <= 1000.0,
        "media resumed on B {resumed_ms:?} ms after C's first key frame"
    );
    let view = cl.b.api("/api/v1/cluster");
    assert_eq!(view["pulls"][0]["origin"], "c", "{view}");
    let epoch_c: u64 = cl
        .redis
        .cmd(&["HGET", "weir:lease:live/cam", "epoch"])
        .parse()
        .unwrap();
    assert!(
        epoch_c > epoch_a,
        "the new owner's epoch {epoch_c} is above {epoch_a}"
    );
    assert_eq!(cl.redis.cmd(&["HGET", "weir:lease:live/cam", "node"]), "c");
    stop.send_replace(true);
}

#[test]
fn a_paused_origin_is_fenced_when_it_returns_and_never_pulled_from_again() {
    let _serial = serial();
    let mut cl = cluster("cluster-pause");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let first = live_on(&rt, &cl.a, "cam", &stopped);
    let on_b = players(&rt, &cl.b, "cam", 3, &stopped);
    std::thread::sleep(Duration::from_secs(2));

    cl.a.child.signal(libc::SIGSTOP);
    let paused = Instant::now();
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(6), || {
        lock(&second).accepted_at.is_some()
    });
    std::thread::sleep(Duration::from_secs(8).saturating_sub(paused.elapsed()));
    cl.a.child.signal(libc::SIGCONT);
    let resumed = Instant::now();
    cl.a.wait_for("A fenced", Duration::from_secs(2), || {
        cl.a.log().contains("cluster: fenced")
    });
    cl.a.wait_for("A stops serving the stream", Duration::from_secs(2), || {
        !cl.a.published("live/cam")
    });
    let fenced_after = resumed.elapsed();
    // The encoder that was on A is closed; the edges pull from C only.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        lock(&first).ended.is_some(),
        "the paused origin's publisher was closed"
    );
    assert_eq!(
        cl.a.rtmp_viewers("live/cam"),
        0,
        "an edge pulls from the fenced node"
    );
    let plays_on_a =
        cl.a.log()
            .lines()
            .filter(|l| l.contains("play started") && l.contains("live/cam"))
            .count();
    assert_eq!(
        plays_on_a, 1,
        "the edge pulled from A once, before the pause"
    );
    assert_eq!(cl.b.api("/api/v1/cluster")["pulls"][0]["origin"], "c");
    for log in &on_b {
        let log = lock(log);
        assert!(
            log.ended.is_none(),
            "a viewer on B was disconnected: {:?}",
            log.ended
        );
        monotonic(&log.frames).unwrap();
        assert!(
            log.frames.iter().any(|f| f.at > resumed),
            "media from C on B"
        );
    }
    eprintln!("cluster fencing: A fenced and stopped serving {fenced_after:?} after SIGCONT");
    stop.send_replace(true);
}

#[test]
fn racing_publishers_of_one_stream_on_two_nodes_leave_one_winner_every_time() {
    let _serial = serial();
    let cl = cluster("cluster-race");
    let rt = runtime();
    const RUNS: usize = 100;
    // Redis's own clock tells how far apart the two nodes' lease requests of a pair were.
    let monitor = cl.redis.monitor();
    let outcomes = rt.block_on(async {
        let mut tasks = Vec::new();
        for run in 0..RUNS {
            let stream = format!("race{run}");
            for node in [&cl.a, &cl.b] {
                let url = node.url(&stream);
                tasks.push(tokio::spawn(async move {
                    let client = weir_client::Client::connect(&url).await;
                    (url, client)
                }));
            }
        }
        let mut clients = Vec::new();
        for task in tasks {
            let (url, client) = task.await.unwrap();
            clients.push((url, client.expect("connect")));
        }
        // Both publishes of a pair are sent in one go (one poll of this runtime).
        // Each pair has a 10 ms slot of its own (100 pairs at once queue up in the nodes and
        // spread the requests); the losers of all pairs wait out their owners together.
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut tasks = Vec::new();
        let mut clients = clients.into_iter();
        let mut slot = 0u64;
        while let (Some((url_a, mut on_a)), Some((url_b, mut on_b))) =
            (clients.next(), clients.next())
        {
            let at = start + Duration::from_millis(10 * slot);
            slot += 1;
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let sent = Instant::now();
                let (ra, rb) =
                    tokio::join!(on_a.publish(&url_a.stream), on_b.publish(&url_b.stream));
                vec![
                    (url_a, sent, ra.is_ok(), on_a),
                    (url_b, sent, rb.is_ok(), on_b),
                ]
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.extend(task.await.unwrap());
        }
        outcomes
    });
    for run in 0..RUNS {
        let pair: Vec<_> = outcomes
            .iter()
            .filter(|(url, ..)| url.stream == format!("race{run}"))
            .collect();
        assert_eq!(pair.len(), 2);
        let winners: Vec<_> = pair.iter().filter(|(_, _, won, _)| *won).collect();
        assert_eq!(winners.len(), 1, "run {run}: {} winners", winners.len());
        let owner = cl
            .redis
            .cmd(&["HGET", &format!("weir:lease:live/race{run}"), "node"]);
        let winner_node = if winners[0].0.port == cl.a.rtmp.port() {
            "a"
        } else {
            "b"
        };
        assert_eq!(owner, winner_node, "run {run}: the lease names the winner");
    }
    // The first lease request of each node per stream, by Redis's clock (µs).
    let lines = monitor.lines();
    let mut spreads = Vec::new();
    for run in 0..RUNS {
        let needle = format!("\"weir\" \"live/race{run}\" \"");
        let mut times = std::collections::BTreeMap::new();
        for line in lines.iter().filter(|l| l.contains(&needle)) {
            let Some(node) = line.split(&needle).nth(1).and_then(|r| r.split('"').next()) else {
                continue;
            };
            let Some(at) = line.split(' ').next().and_then(|t| t.parse::<f64>().ok()) else {
                continue;
            };
            times.entry(node.to_owned()).or_insert(at);
        }
        if let (Some(a), Some(b)) = (times.get("a"), times.get("b")) {
            spreads.push((a - b).abs() * 1000.0);
        }
    }
    assert_eq!(
        spreads.len(),
        RUNS,
        "both nodes' lease requests seen for every run"
    );
    let mut sorted = spreads.clone();
    let median = percentile(&mut sorted, 50.0);
    let within_1ms = spreads.iter().filter(|ms| **ms <= 1.0).count();
    eprintln!(
        "cluster races: {RUNS} of {RUNS} had one winner; the two nodes' lease requests reached Redis {median:.2} ms apart (median), {within_1ms} of {RUNS} within 1 ms, at most {:.2} ms",
        sorted.last().copied().unwrap_or(0.0)
    );
    rt.block_on(async {
        for (.., client) in outcomes {
            let _ = client.close().await;
        }
    });
}

#[test]
fn a_redis_outage_drops_nothing_and_an_empty_redis_gets_the_leases_back() {
    let _serial = serial();
    let outage: u64 = std::env::var("WEIR_CLUSTER_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut cl = cluster("cluster-outage");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let first = live_on(&rt, &cl.a, "cam", &stopped);
    let on_b = players(&rt, &cl.b, "cam", 5, &stopped);
    let on_a = players(&rt, &cl.a, "cam", 5, &stopped);
    std::thread::sleep(Duration::from_secs(2));
    let epoch = cl.redis.cmd(&["HGET", "weir:lease:live/cam", "epoch"]);
    assert!(epoch.parse::<u64>().is_ok_and(|e| e > 0), "{epoch}");

    cl.redis.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    // A cold play elsewhere is refused at once, with a reason to retry.
    let cold = players(&rt, &cl.c, "cam", 1, &stopped);
    let waited = Instant::now();
    while lock(&cold[0]).ended.is_none() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let cold = lock(&cold[0]);
        let asked = cold.asked_at.expect("the cold play was sent");
        assert!(
            cold.ended.as_deref().is_some_and(|e| e.contains("Redis")),
            "a cold play during the outage: {:?}\n{}",
            cold.ended,
            tail(&cl.c.log(), 10)
        );
        let took = cold.ended_at.unwrap().duration_since(asked);
        assert!(
            took <= Duration::from_millis(1200),
            "the cold play was refused after {took:?}"
        );
    }
    // Over HTTP-FLV and HLS the same: 503, at once.
    for path in ["/live/cam.flv", "/live/cam/index.m3u8"] {
        let asked = Instant::now();
        let (status, body) = common::access::http_get(cl.c.http, path);
        assert!(
            status.contains("503") && String::from_utf8_lossy(&body).contains("Redis"),
            "{path} during the outage: {status} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            asked.elapsed() <= Duration::from_millis(1200),
            "{path} took {:?}",
            asked.elapsed()
        );
    }
    // A new publish is taken without a lease.
    let other = publisher(&rt, &cl.c, "other", &stopped);
    cl.c.wait_for(
        "a publish during the outage",
        Duration::from_secs(3),
        || lock(&other).accepted_at.is_some(),
    );
    std::thread::sleep(Duration::from_secs(outage).saturating_sub(down.elapsed()));

    cl.redis.restart();
    let back = Instant::now();
    cl.a.wait_for(
        "the leases back in the empty Redis",
        Duration::from_secs(2),
        || {
            cl.redis.cmd(&["HGET", "weir:lease:live/cam", "node"]) == "a"
                && cl.redis.cmd(&["HGET", "weir:lease:live/other", "node"]) == "c"
        },
    );
    let restored_after = back.elapsed();
    assert_eq!(
        cl.redis.cmd(&["HGET", "weir:lease:live/cam", "epoch"]),
        epoch,
        "the lease came back with its epoch"
    );
    std::thread::sleep(Duration::from_secs(1));
    for log in on_b.iter().chain(&on_a) {
        let log = lock(log);
        assert!(log.ended.is_none(), "a viewer was dropped: {:?}", log.ended);
        let gap = longest_gap(&log.frames, down);
        assert!(
            gap <= Duration::from_millis(700),
            "a viewer's media paused {gap:?}"
        );
    }
    assert!(lock(&first).ended.is_none(), "the publisher was dropped");
    assert!(
        lock(&other).ended.is_none(),
        "the outage's publisher was dropped"
    );
    eprintln!(
        "cluster outage: Redis down {:.1} s, 0 of 10 viewers and 0 of 2 publishers dropped; leases back {restored_after:?} after an empty restart",
        back.duration_since(down).as_secs_f64()
    );
    stop.send_replace(true);
}

#[test]
fn a_drain_gives_the_leases_back_at_once() {
    let _serial = serial();
    let cl = cluster("cluster-drain");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let _first = live_on(&rt, &cl.a, "cam", &stopped);
    // A second publisher of the stream on the same node is refused, and the lease stays.
    let epoch = cl.redis.cmd(&["HGET", "weir:lease:live/cam", "epoch"]);
    let duplicate = publisher(&rt, &cl.a, "cam", &stopped);
    cl.a.wait_for("the duplicate refused", Duration::from_secs(5), || {
        lock(&duplicate).ended.is_some()
    });
    assert!(lock(&duplicate).accepted_at.is_none());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cl.redis.cmd(&["HGET", "weir:lease:live/cam", "node"]), "a");
    assert_eq!(
        cl.redis.cmd(&["HGET", "weir:lease:live/cam", "epoch"]),
        epoch
    );
    assert_eq!(cl.a.api("/api/v1/cluster")["held"][0]["stream"], "live/cam");
    let (status, _) = common::access::http_post(cl.a.api, "/api/v1/drain", "");
    assert!(status.contains("20"), "{status}");
    cl.a.wait_for("the lease released", Duration::from_millis(500), || {
        cl.redis.cmd(&["EXISTS", "weir:lease:live/cam"]) == "0"
    });
    // The encoder reconnects to C and is taken at once (no wait for A's heartbeat).
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(3), || {
        lock(&second).accepted_at.is_some()
    });
    let waited = {
        let log = lock(&second);
        log.accepted_at
            .unwrap()
            .duration_since(log.asked_at.unwrap())
    };
    assert!(waited <= Duration::from_millis(200), "C waited {waited:?}");
    stop.send_replace(true);
    drop(cl.dir);
}

#[test]
fn nodes_reach_a_tls_redis_with_a_private_ca_and_client_certificates() {
    let _serial = serial();
    let dir = TestDir::new("cluster-tls");
    let ca = common::tls::private_ca(dir.path());
    let redis = RedisServer::start_tls(dir.path(), &ca.server.0, &ca.server.1, &ca.ca);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let files = format!(
        "redis_ca_file = \"{}\"\nredis_cert_file = \"{}\"\nredis_key_file = \"{}\"",
        ca.ca.display(),
        ca.client.0.display(),
        ca.client.1.display()
    );
    let a = Node::start(dir.path(), "a", &url, &files);
    let b = Node::start(dir.path(), "b", &url, &files);
    // Without a client certificate Redis (tls-auth-clients yes) refuses the node; without
    // the private CA the node refuses Redis. Each says so and serves on alone.
    let no_cert = Node::start(
        dir.path(),
        "no-cert",
        &url,
        &format!("redis_ca_file = \"{}\"", ca.ca.display()),
    );
    let no_ca = Node::start(
        dir.path(),
        "no-ca",
        &url,
        &format!(
            "redis_cert_file = \"{}\"\nredis_key_file = \"{}\"",
            ca.client.0.display(),
            ca.client.1.display()
        ),
    );
    a.wait_for("both nodes seen over TLS", Duration::from_secs(5), || {
        let view = a.api("/api/v1/cluster");
        view["redis_up"] == true && view["nodes"].as_array().map_or(0, Vec::len) == 2
    });
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let _publisher = live_on(&rt, &a, "cam", &stopped);
    let viewer = players(&rt, &b, "cam", 1, &stopped).remove(0);
    b.wait_for("media through the edge", Duration::from_secs(5), || {
        lock(&viewer).frames.len() > 10
    });
    assert_eq!(a.api("/api/v1/cluster")["leases"][0]["stream"], "live/cam");
    // (With TLS 1.3 a client learns that Redis refused its missing certificate on its first
    // command, not in the handshake: the error's words differ; both are outages.)
    for node in [&no_cert, &no_ca] {
        node.wait_for("Redis unreachable", Duration::from_secs(5), || {
            node.log().contains("cluster: Redis unreachable: ")
        });
        let view = node.api("/api/v1/cluster");
        assert_eq!(view["redis_up"], false, "{view}");
        assert_eq!(view["nodes"].as_array().map_or(0, Vec::len), 0, "{view}");
    }
    let why = no_ca.api("/api/v1/cluster")["redis_error"].to_string();
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    // The two refused nodes never joined: the cluster is A and B.
    assert_eq!(
        a.api("/api/v1/cluster")["nodes"]
            .as_array()
            .map_or(0, Vec::len),
        2
    );
    stop.send_replace(true);
    drop(dir);
}

/// A GET through reqwest: status and body.
async fn get(client: &reqwest::Client, url: &str) -> (u16, bytes::Bytes) {
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap_or_default())
        }
        Err(_) => (0, bytes::Bytes::new()),
    }
}

/// The URIs a media playlist names: segments, parts, init segments (maps), the preload hint.
fn playlist_uris(playlist: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in playlist.lines() {
        if line.starts_with("seg") {
            uris.push(line.to_owned());
        } else if let Some(i) = line.find("URI=\"") {
            if line.starts_with("#EXT-X-PRELOAD-HINT")
                || line.starts_with("#EXT-X-RENDITION-REPORT")
            {
                continue;
            }
            let rest = &line[i + 5..];
            if let Some(end) = rest.find('"') {
                uris.push(rest[..end].to_owned());
            }
        }
    }
    uris
}

fn tag_value(playlist: &str, tag: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .and_then(|v| v.trim().parse().ok())
}

/// The `weir_hls_requests_total` count of one kind answered with 2xx, from a node's metrics.
fn hls_requests(node: &Node, kind: &str) -> u64 {
    let (_, metrics) = common::access::http_get(node.api, "/metrics");
    let want = format!("weir_hls_requests_total{{kind=\"{kind}\",status=\"2xx\"}} ");
    String::from_utf8_lossy(&metrics)
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn hls_through_an_edge_continues_across_an_origin_failover_and_coalesces_fetches() {
    let _serial = serial();
    let mut cl = cluster("cluster-hls");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let (stop_first, first_stopped) = watch::channel(false);
    let _first = live_on(&rt, &cl.a, "cam", &first_stopped);
    let http = reqwest::Client::new();
    let base = format!("http://{}/live/cam", cl.b.http);
    // Polls B's playlist every 100 ms; fetches every URI it names once, through B.
    let (poll_stop, poll_stopped) = watch::channel(false);
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let bytes_of: Arc<Mutex<std::collections::HashMap<String, u64>>> = Arc::default();
    let poller = {
        let (http, base, seen, bytes_of) =
            (http.clone(), base.clone(), seen.clone(), bytes_of.clone());
        let mut poll_stopped = poll_stopped.clone();
        rt.spawn(async move {
            let (status, body) = get(&http, &format!("{base}/index.m3u8")).await;
            assert_eq!(status, 200, "the multivariant playlist through B");
            assert!(String::from_utf8_lossy(&body).contains("v0/index.m3u8"));
            loop {
                let (status, body) = get(&http, &format!("{base}/v0/index.m3u8")).await;
                if status == 200 {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    for uri in playlist_uris(&text) {
                        if bytes_of.lock().unwrap().contains_key(&uri) {
                            continue;
                        }
                        let (status, data) = get(&http, &format!("{base}/v0/{uri}")).await;
                        if status == 200 {
                            bytes_of
                                .lock()
                                .unwrap()
                                .insert(uri, common::cluster::payload_hash(&data));
                        }
                    }
                    seen.lock().unwrap().push((Instant::now(), text));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = poll_stopped.wait_for(|s| *s) => break,
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    let before_uris: std::collections::HashMap<String, u64> = bytes_of.lock().unwrap().clone();
    assert!(
        before_uris.len() > 10,
        "{} URIs fetched through B",
        before_uris.len()
    );

    cl.a.child.kill();
    stop_first.send_replace(true);
    let killed = Instant::now();
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(6), || {
        lock(&second).accepted_at.is_some()
    });
    std::thread::sleep(Duration::from_secs(6));

    poll_stop.send_replace(true);
    rt.block_on(poller).unwrap();
    // 200 requests at once for the part the playlist hints at next, through B: one fetch
    // from the origin.
    let parts_before = hls_requests(&cl.c, "part");
    let (statuses, hashes) = rt.block_on(async {
        let (_, playlist) = get(&http, &format!("{base}/v0/index.m3u8")).await;
        let playlist = String::from_utf8_lossy(&playlist).into_owned();
        let hint = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"))
            .to_owned();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (http, url) = (http.clone(), format!("{base}/v0/{hint}"));
                tokio::spawn(async move { get(&http, &url).await })
            })
            .collect();
        let mut statuses = Vec::new();
        let mut hashes = std::collections::HashSet::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            statuses.push(status);
            hashes.insert(common::cluster::payload_hash(&body));
        }
        (statuses, hashes)
    });
    let parts_after = hls_requests(&cl.c, "part");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        hashes.len(),
        1,
        "200 requests for one part got different bytes"
    );
    assert_eq!(
        parts_after - parts_before,
        1,
        "200 concurrent requests for a new part through B fetched it once from the origin"
    );

    // The playlists through B: the media sequence never went back, a discontinuity marks
    // the switch, and no URI named other bytes after it.
    let seen = seen.lock().unwrap().clone();
    let mut last_sequence = 0;
    let mut switched = None;
    for (at, text) in &seen {
        let sequence = tag_value(text, "#EXT-X-MEDIA-SEQUENCE:").expect("a media sequence");
        assert!(
            sequence >= last_sequence,
            "the media sequence went back from {last_sequence} to {sequence}:\n{text}"
        );
        last_sequence = sequence;
        if *at > killed && switched.is_none() && text.contains("#EXT-X-DISCONTINUITY\n") {
            switched = Some(text.clone());
        }
    }
    let switched = switched.unwrap_or_else(|| {
        panic!(
            "no DISCONTINUITY after the failover; last playlist:\n{}",
            seen.last().map_or("", |(_, t)| t.as_str())
        )
    });
    let after = bytes_of.lock().unwrap().clone();
    let mut reused = Vec::new();
    rt.block_on(async {
        for uri in after.keys().filter(|u| before_uris.contains_key(*u)) {
            // Still served: the same bytes as before (kept by B or not, the origin's
            // numbering never names other bytes).
            let (status, data) = get(&http, &format!("{base}/v0/{uri}")).await;
            if status == 200 && common::cluster::payload_hash(&data) != before_uris[uri] {
                reused.push(uri.clone());
            }
        }
    });
    assert!(
        reused.is_empty(),
        "URIs naming other bytes after the failover: {reused:?}"
    );
    let new_uris = after.len() - before_uris.len();
    assert!(new_uris > 10, "{new_uris} URIs from the new origin");
    eprintln!(
        "cluster hls: {} playlists through B, media sequence never back ({last_sequence} at the end), a DISCONTINUITY at the switch, {} URIs before and {new_uris} after, none reused; 200 requests for a new part: 1 fetch",
        seen.len(),
        before_uris.len()
    );
    assert!(
        cl.c.log()
            .contains("hls continues the numbering of the stream's previous origin"),
        "C did not continue A's numbering\n{}",
        tail(&cl.c.log(), 30)
    );
    let last_before = before_uris
        .keys()
        .filter_map(|u| {
            u.strip_prefix("seg")?
                .strip_suffix(".m4s")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    let first_after = playlist_uris(&switched)
        .iter()
        .filter_map(|u| {
            u.strip_prefix("seg")?
                .strip_suffix(".m4s")?
                .parse::<u64>()
                .ok()
        })
        .filter(|n| !before_uris.contains_key(&format!("seg{n}.m4s")))
        .min();
    if let Some(first_after) = first_after {
        assert!(
            first_after > last_before,
            "segment {first_after} after {last_before}"
        );
    }
    stop.send_replace(true);
}

#[test]
fn a_silent_publisher_on_one_node_is_replaced_from_another_after_the_stale_time() {
    let _serial = serial();
    let cl = cluster("cluster-stale");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let tags = tags();
    // An encoder on A that sends 2 s of media, then nothing, its connection open.
    let mut silent = rt.block_on(async {
        let url = cl.a.url("cam");
        let mut client = weir_client::Client::connect(&url).await.unwrap();
        client.publish("cam").await.unwrap();
        let start = tokio::time::Instant::now();
        for tag in tags.iter().filter(|t| t.timestamp < 2000) {
            tokio::time::sleep_until(start + Duration::from_millis(u64::from(tag.timestamp))).await;
            let kind = match tag.kind {
                weir_media::MediaKind::Video => weir_rtmp::session::MediaType::Video,
                weir_media::MediaKind::Audio => weir_rtmp::session::MediaType::Audio,
                weir_media::MediaKind::Data => continue,
            };
            client
                .send_media(kind, tag.timestamp, tag.body.clone())
                .await
                .unwrap();
        }
        client
    });
    let silent_since = Instant::now();
    let on_b = players(&rt, &cl.b, "cam", 2, &stopped);
    let on_a = players(&rt, &cl.a, "cam", 2, &stopped);
    // publish.stale_secs is 5 by default: a publish on C after 6 s of silence takes over.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(silent_since.elapsed()));
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(3), || {
        let log = lock(&second);
        log.accepted_at.is_some() || log.ended.is_some()
    });
    assert!(
        lock(&second).accepted_at.is_some(),
        "refused: {:?}\n{}",
        lock(&second).ended.clone(),
        tail(&cl.c.log(), 10)
    );
    let accepted = Instant::now();
    cl.a.wait_for("A fenced", Duration::from_secs(2), || {
        cl.a.log().contains("cluster: fenced")
    });
    // The silent encoder's connection is closed by A.
    let closed = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if silent.next_event(Duration::from_millis(200)).await.is_err() {
                return true;
            }
        }
        false
    });
    assert!(closed, "the silent publisher on A was not closed");
    std::thread::sleep(Duration::from_secs(2));
    for log in &on_b {
        let log = lock(log);
        assert!(
            log.ended.is_none(),
            "a viewer on B was disconnected: {:?}",
            log.ended
        );
        assert!(
            log.frames.iter().any(|f| f.at > accepted),
            "media from C on B"
        );
    }
    // A's own viewers stay through the fencing and follow the stream to C.
    std::thread::sleep(Duration::from_secs(1));
    for log in &on_a {
        let log = lock(log);
        assert!(
            log.ended.is_none(),
            "a viewer on the fenced node was disconnected: {:?}",
            log.ended
        );
        assert!(
            log.frames.iter().any(|f| f.at > accepted),
            "media from C on A"
        );
    }
    assert_eq!(cl.redis.cmd(&["HGET", "weir:lease:live/cam", "node"]), "c");
    stop.send_replace(true);
}

#[test]
fn a_lease_whose_release_failed_is_released_when_redis_answers_again() {
    let _serial = serial();
    let mut cl = cluster("cluster-release");
    let rt = runtime();
    let (stop, stopped) = watch::channel(false);
    let (stop_first, first_stopped) = watch::channel(false);
    let first = live_on(&rt, &cl.a, "cam", &first_stopped);
    // Redis stops answering; the encoder leaves meanwhile: the release fails.
    cl.redis.freeze(true);
    stop_first.send_replace(true);
    cl.a.wait_for("the release tried", Duration::from_secs(5), || {
        cl.a.log().contains("lease not released")
    });
    assert!(lock(&first).ended.is_none());
    cl.redis.freeze(false);
    let thawed = Instant::now();
    cl.a.wait_for("the lease released", Duration::from_secs(3), || {
        cl.redis.cmd(&["EXISTS", "weir:lease:live/cam"]) == "0"
    });
    eprintln!("cluster release: a lease whose release failed was released {:?} after Redis answered again", thawed.elapsed());
    // The stream is free for any node.
    let second = publisher(&rt, &cl.c, "cam", &stopped);
    cl.c.wait_for("the publish on C accepted", Duration::from_secs(2), || {
        lock(&second).accepted_at.is_some()
    });
    stop.send_replace(true);
}
