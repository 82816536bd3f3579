//! B6: offer relay through `remotemedia-server` with 1000 peers connected, gRPC `Signal`
//! against the JSON-RPC WebSocket, side by side in one run.
//!
//!     cargo bench -p remotemedia-signaling --bench signaling_relay
//!
//! The release server binary runs as its own process. This process holds 1000 gRPC peers
//! (10 HTTP/2 connections x 100 Signal streams) and 1000 WebSocket peers (one connection
//! each), all announced at once in the server's one registry. An offer carries its send time
//! (nanoseconds on this process's monotonic clock, taken just before it is handed to the
//! client library) in its SDP's `o=` line; the receiving peer's reader, in this process too,
//! takes its own time when the notification is decoded. Rounds alternate the transports:
//!
//! - paced: 1000 offers/s (one every millisecond, from each peer in turn to another), 2 s;
//!   relay latency p50/p99 (target: p99 below 5 ms);
//! - burst: every peer sends 20 offers at once (20000 offers); relayed messages per second,
//!   from the first send to the last receipt, and the latency under that load.
//!
//! `RM_BENCH_SERVER=/path/to/remotemedia-server` runs another build of the server instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use remotemedia_signaling::grpc::pb::webrtc as pb;
use remotemedia_signaling::grpc::pb::webrtc::signaling_notification::Event as N;
use remotemedia_signaling::grpc::pb::webrtc::signaling_request::Request as Req;
use remotemedia_signaling::grpc::pb::webrtc::signaling_response::Response as Resp;
use remotemedia_signaling::grpc::pb::webrtc::web_rtc_signaling_client::WebRtcSignalingClient;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::Channel;

const PEERS: usize = 1000;
const CONNECTIONS: usize = 10;
const ROUNDS: usize = 3;
const PACED_RATE: u64 = 1000;
const PACED_FOR: Duration = Duration::from_secs(2);
const BURST_PER_PEER: usize = 20;

/// Nanoseconds since the start of this process's measurements.
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A plausible audio + video offer (about 1.6 KB, like a browser's or webrtcbin's), with the
/// send time in its `o=` line.
fn sdp(seq: u64) -> String {
    let mut s = format!(
        "v=0\r\no=- {seq} {} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=msid-semantic: WMS stream\r\n",
        now_ns()
    );
    for (mid, kind, pt, codec) in [
        (0, "audio", 111, "opus/48000/2"),
        (1, "video", 96, "VP8/90000"),
    ] {
        s.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Xa7Q\r\na=ice-pwd:Qh3bXfFf3kE0uKfVvX8ZlH1q\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:\
             A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:79:F2\r\na=setup:actpass\r\na=mid:{mid}\r\n\
             a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\na=rtcp-fb:{pt} nack\r\n\
             a=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} transport-cc\r\n\
             a=ssrc:{} cname:remotemedia\r\na=ssrc:{} msid:stream track{mid}\r\n\
             a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
             a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
             a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n",
            1000 + mid,
            1000 + mid
        ));
    }
    s
}

/// The send time written by `sdp`.
fn sent_at(sdp: &str) -> Option<u64> {
    let line = sdp.split("\r\n").find(|l| l.starts_with("o=- "))?;
    line.split(' ').nth(2)?.parse().ok()
}

/// What the readers of one transport record.
#[derive(Default)]
struct Tally {
    latencies_ns: Mutex<Vec<u64>>,
    received: AtomicU64,
    last_receipt_ns: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn offer(&self, sdp: &str) {
        let now = now_ns();
        if let Some(t) = sent_at(sdp) {
            self.latencies_ns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(now.saturating_sub(t));
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_receipt_ns.fetch_max(now, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<u64> {
        std::mem::take(
            &mut *self
                .latencies_ns
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// The last time any reader saw any message: setup is over when this stops moving.
static LAST_MESSAGE_NS: AtomicU64 = AtomicU64::new(0);

fn seen() {
    LAST_MESSAGE_NS.fetch_max(now_ns(), Ordering::Relaxed);
}

#[path = "../tests/common/server_process.rs"]
mod server_process;
use server_process::ServerProcess;

/// A gRPC peer: announces, then reads its stream until the end, recording offers.
async fn grpc_peer(
    channel: Channel,
    me: String,
    tally: Arc<Tally>,
    ready: oneshot::Sender<mpsc::Sender<pb::SignalingRequest>>,
) {
    let (tx, requests) = mpsc::channel(256);
    let mut rx = WebRtcSignalingClient::new(channel)
        .signal(ReceiverStream::new(requests))
        .await
        .expect("Signal")
        .into_inner();
    let announce = pb::AnnounceRequest {
        peer_id: me,
        ..Default::default()
    };
    tx.send(pb::SignalingRequest {
        request_id: "announce".into(),
        request: Some(Req::Announce(announce)),
    })
    .await
    .unwrap();
    let mut ready = Some((ready, tx));
    while let Ok(Some(r)) = rx.message().await {
        seen();
        match r.response {
            Some(Resp::Notification(pb::SignalingNotification {
                event: Some(N::Offer(o)),
            })) => tally.offer(&o.sdp),
            Some(Resp::Error(e)) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("gRPC error: {e:?}");
            }
            Some(Resp::Ack(_)) if r.request_id == "announce" => {
                if let Some((ready, tx)) = ready.take() {
                    let _ = ready.send(tx);
                }
            }
            _ => {}
        }
    }
}

/// A WebSocket peer: announces, then reads until the end, recording offers; a writer task
/// sends what the driver queues.
async fn ws_peer(
    url: String,
    me: String,
    tally: Arc<Tally>,
    ready: oneshot::Sender<mpsc::Sender<String>>,
) {
    let (ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("WebSocket connect");
    let (mut sink, mut stream) = ws.split();
    let (tx, mut outgoing) = mpsc::channel::<String>(256);
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    let announce = json!({"jsonrpc": "2.0", "id": "announce", "method": "peer.announce",
                          "params": {"peer_id": me}});
    tx.send(announce.to_string()).await.unwrap();
    let mut ready = Some((ready, tx));
    while let Some(Ok(m)) = stream.next().await {
        seen();
        let Message::Text(text) = m else { continue };
        let v: Value = serde_json::from_str(text.as_str()).expect("JSON from the server");
        if v["method"] == "peer.offer" {
            tally.offer(v["params"]["sdp"].as_str().unwrap_or_default());
        } else if v.get("error").is_some() {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("WebSocket error: {v}");
        } else if v["id"] == "announce"
            && let Some((ready, tx)) = ready.take()
        {
            let _ = ready.send(tx);
        }
    }
}

/// How one transport's peers are told to send an offer.
#[derive(Clone)]
enum Senders {
    Grpc(Vec<mpsc::Sender<pb::SignalingRequest>>),
    Ws(Vec<mpsc::Sender<String>>),
}

impl Senders {
    fn name(&self) -> &'static str {
        match self {
            Senders::Grpc(_) => "gRPC Signal",
            Senders::Ws(_) => "JSON-RPC WebSocket",
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Senders::Grpc(_) => "g",
            Senders::Ws(_) => "w",
        }
    }

    /// Peer `from` offers to peer `to` (both indices on this transport).
    async fn offer(&self, from: usize, to: usize, seq: u64) {
        let to = format!("{}{to:04}", self.prefix());
        match self {
            Senders::Grpc(tx) => {
                let request = pb::SignalingRequest {
                    request_id: seq.to_string(),
                    request: Some(Req::Offer(pb::OfferRequest {
                        to_peer_id: to,
                        sdp: sdp(seq),
                    })),
                };
                tx[from].send(request).await.unwrap();
            }
            Senders::Ws(tx) => {
                let request = json!({"jsonrpc": "2.0", "id": seq, "method": "peer.offer",
                                     "params": {"to": to, "sdp": sdp(seq)}});
                tx[from].send(request.to_string()).await.unwrap();
            }
        }
    }
}

/// The peer an offer goes to: the next ones in turn, never the sender.
fn target(from: usize, seq: u64) -> usize {
    (from + 1 + (seq as usize / PEERS) % (PEERS - 1)) % PEERS
}

async fn wait_quiet() {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if now_ns().saturating_sub(LAST_MESSAGE_NS.load(Ordering::Relaxed)) > 500_000_000 {
            return;
        }
    }
}

/// Waits until `expected` offers have been received (or 10 s pass); returns how many were.
async fn wait_received(tally: &Tally, expected: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = tally.received.load(Ordering::Relaxed);
        if got >= expected || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Default)]
struct Results {
    paced: Vec<u64>,
    burst: Vec<u64>,
    rates: Vec<f64>,
    lost: u64,
}

async fn paced(senders: &Senders, tally: &Tally, results: &mut Results) {
    let count = PACED_RATE * PACED_FOR.as_secs();
    let before = tally.received.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / PACED_RATE));
    for seq in 0..count {
        tick.tick().await;
        let from = seq as usize % PEERS;
        senders.offer(from, target(from, seq), seq).await;
    }
    let got = wait_received(tally, before + count).await - before;
    results.lost += count.saturating_sub(got);
    results.paced.extend(tally.take());
}

async fn burst(senders: &Senders, tally: &Tally, results: &mut Results) {
    let count = (PEERS * BURST_PER_PEER) as u64;
    let before = tally.received.load(Ordering::Relaxed);
    let start = now_ns();
    for seq in 0..count {
        let from = seq as usize % PEERS;
        senders.offer(from, target(from, seq), seq).await;
    }
    let got = wait_received(tally, before + count).await - before;
    let took = tally.last_receipt_ns.load(Ordering::Relaxed) - start;
    results.lost += count.saturating_sub(got);
    results.rates.push(got as f64 / (took as f64 / 1e9));
    results.burst.extend(tally.take());
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        now_ns();
        let server = ServerProcess::for_bench("127.0.0.1:0");
        let (grpc_addr, ws_addr) = (server.grpc.clone(), server.ws.clone());
        let setup = Instant::now();
        let grpc_tally = Arc::new(Tally::default());
        let ws_tally = Arc::new(Tally::default());

        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            let channel = Channel::from_shared(format!("http://{grpc_addr}"))
                .unwrap()
                .connect()
                .await
                .expect("connect gRPC");
            channels.push(channel);
        }
        let mut grpc_ready = Vec::new();
        for i in 0..PEERS {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(grpc_peer(
                channels[i % CONNECTIONS].clone(),
                format!("g{i:04}"),
                grpc_tally.clone(),
                tx,
            ));
            grpc_ready.push(rx);
        }
        let mut grpc = Vec::new();
        for rx in grpc_ready {
            grpc.push(rx.await.expect("gRPC peer announced"));
        }
        let url = format!("ws://{ws_addr}/ws");
        let mut ws = Vec::new();
        for batch in 0..PEERS / 100 {
            let mut ready = Vec::new();
            for i in batch * 100..(batch + 1) * 100 {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(ws_peer(
                    url.clone(),
                    format!("w{i:04}"),
                    ws_tally.clone(),
                    tx,
                ));
                ready.push(rx);
            }
            for rx in ready {
                ws.push(rx.await.expect("WebSocket peer announced"));
            }
        }
        wait_quiet().await;
        println!(
            "B6 offer relay, {PEERS} gRPC + {PEERS} WebSocket peers announced in {:.1} s \
             (peer.joined flood included); {ROUNDS} rounds",
            setup.elapsed().as_secs_f64()
        );

        let transports = [
            (Senders::Grpc(grpc), grpc_tally),
            (Senders::Ws(ws), ws_tally),
        ];
        let mut results: Vec<Results> = transports.iter().map(|_| Results::default()).collect();
        for round in 0..ROUNDS {
            // Alternate which transport goes first.
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1]
            } else {
                vec![1, 0]
            };
            for &t in &order {
                let (senders, tally) = &transports[t];
                paced(senders, tally, &mut results[t]).await;
            }
            for &t in &order {
                let (senders, tally) = &transports[t];
                burst(senders, tally, &mut results[t]).await;
                wait_quiet().await;
            }
        }

        println!(
            "  {:<20} {:>27} {:>27} {:>14} {:>6} {:>6}",
            "",
            "paced 1000/s: p50/p99/max ms",
            "burst: p50/p99/max ms",
            "burst msg/s",
            "lost",
            "errors"
        );
        for ((senders, tally), r) in transports.iter().zip(&mut results) {
            r.paced.sort_unstable();
            r.burst.sort_unstable();
            let rates: Vec<String> = r.rates.iter().map(|x| format!("{x:.0}")).collect();
            let mean_rate = r.rates.iter().sum::<f64>() / r.rates.len() as f64;
            println!(
                "  {:<20} {:>9.3} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {:>8.3} {:>14.0} {:>6} {:>6}",
                senders.name(),
                percentile(&r.paced, 0.5),
                percentile(&r.paced, 0.99),
                percentile(&r.paced, 1.0),
                percentile(&r.burst, 0.5),
                percentile(&r.burst, 0.99),
                percentile(&r.burst, 1.0),
                mean_rate,
                r.lost,
                tally.errors.load(Ordering::Relaxed),
            );
            println!(
                "  {:<20} paced samples {}, burst samples {}, burst msg/s per round: {}",
                "",
                r.paced.len(),
                r.burst.len(),
                rates.join(", ")
            );
        }
    });
}
