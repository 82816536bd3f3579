//! Load: 1000 concurrent gRPC Signal streams on the built `remotemedia-server`, over 10
//! HTTP/2 connections of 100 streams each. Every peer announces, then peer i offers to peer
//! (i+1) % 1000 and answers the offer it gets; each offer and answer must arrive exactly once,
//! at the right peer, with the right `from_peer_id`. Then every stream leaves: the registry
//! and the server's own gauges must come back to zero, and over three such rounds the
//! server's resident memory must come back near where the previous round left it (see
//! `ROUNDS` for why not the cold start).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use remotemedia_signaling::grpc::pb::webrtc as pb;
use remotemedia_signaling::grpc::pb::webrtc::signaling_notification::Event as N;
use remotemedia_signaling::grpc::pb::webrtc::signaling_request::Request as Req;
use remotemedia_signaling::grpc::pb::webrtc::signaling_response::Response as Resp;
use remotemedia_signaling::grpc::pb::webrtc::web_rtc_signaling_client::WebRtcSignalingClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Barrier, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

const PEERS: usize = 1000;
const CONNECTIONS: usize = 10;
/// A bound on each round (4-25 s on the 2-core machine, debug build), so a stall fails.
const DEADLINE: Duration = Duration::from_secs(120);

mod common {
    pub mod server_process;
}
use common::server_process::ServerProcess as Server;

impl Server {
    fn start() -> Self {
        Self::spawn(
            env!("CARGO_BIN_EXE_remotemedia-server"),
            // 100 streams open at once on each connection: far above the default 100/s.
            &[
                "--grpc-bind",
                "127.0.0.1:0",
                "--ws-bind",
                "127.0.0.1:0",
                "--metrics-bind",
                "127.0.0.1:0",
                "--calls-per-sec",
                "100000",
            ],
        )
    }
}

fn name(i: usize) -> String {
    format!("peer-{i:04}")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// How far the peers got, for the message when the deadline passes.
#[derive(Default)]
struct Progress {
    opened: AtomicUsize,
    announced: AtomicUsize,
    fenced: AtomicUsize,
    exchanged: AtomicUsize,
    checked: AtomicUsize,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        write!(
            f,
            "streams opened {}, announced {}, joins read {}, offer+answer done {}, checked {} (of {PEERS})",
            n(&self.opened),
            n(&self.announced),
            n(&self.fenced),
            n(&self.exchanged),
            n(&self.checked)
        )
    }
}

/// What one peer heard besides its own replies.
#[derive(Default)]
struct Heard {
    offers: Vec<(String, String)>,
    answers: Vec<(String, String)>,
    joined: Vec<String>,
    /// Candidates this peer relayed to itself (see `Stream::fence`).
    fences: Vec<String>,
}

/// One Signal stream: its request side and its response side.
struct Stream {
    me: String,
    tx: mpsc::Sender<pb::SignalingRequest>,
    rx: Streaming<pb::SignalingResponse>,
    heard: Heard,
}

impl Stream {
    async fn open(channel: Channel, me: String) -> Result<Self, String> {
        let (tx, requests) = mpsc::channel(16);
        let rx = WebRtcSignalingClient::new(channel)
            .signal(ReceiverStream::new(requests))
            .await
            .map_err(|s| format!("{me}: Signal refused: {s:?}"))?
            .into_inner();
        Ok(Self {
            me,
            tx,
            rx,
            heard: Heard::default(),
        })
    }

    async fn send(&self, request_id: &str, request: Req) -> Result<(), String> {
        let request = pb::SignalingRequest {
            request_id: request_id.to_owned(),
            request: Some(request),
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| format!("{}: request stream closed", self.me))
    }

    async fn next(&mut self) -> Result<pb::SignalingResponse, String> {
        self.rx
            .message()
            .await
            .map_err(|s| format!("{}: stream failed: {s:?}", self.me))?
            .ok_or_else(|| format!("{}: stream ended", self.me))
    }

    /// The next response that is not a notification; notifications go to `heard`.
    async fn next_reply(&mut self) -> Result<pb::SignalingResponse, String> {
        loop {
            let r = self.next().await?;
            match &r.response {
                Some(Resp::Notification(n)) => self.note(n),
                _ => return Ok(r),
            }
        }
    }

    /// Waits for the reply to `request_id`; any other reply is an error.
    async fn reply_to(&mut self, request_id: &str) -> Result<Resp, String> {
        let r = self.next_reply().await?;
        if r.request_id != request_id {
            return Err(format!(
                "{}: reply to '{}' while waiting for '{request_id}': {r:?}",
                self.me, r.request_id
            ));
        }
        match r.response {
            Some(Resp::Error(e)) => Err(format!("{}: '{request_id}' failed: {e:?}", self.me)),
            Some(r) => Ok(r),
            None => Err(format!("{}: empty reply to '{request_id}'", self.me)),
        }
    }

    fn note(&mut self, n: &pb::SignalingNotification) {
        match &n.event {
            Some(N::Offer(o)) => self
                .heard
                .offers
                .push((o.from_peer_id.clone(), o.sdp.clone())),
            Some(N::Answer(a)) => self
                .heard
                .answers
                .push((a.from_peer_id.clone(), a.sdp.clone())),
            Some(N::PeerJoined(j)) => {
                let id = j.peer.as_ref().map(|p| p.peer_id.clone());
                self.heard.joined.push(id.unwrap_or_default());
            }
            Some(N::IceCandidate(c)) if c.from_peer_id == self.me => {
                self.heard.fences.push(c.candidate.clone());
            }
            _ => {}
        }
    }

    async fn list_peers(&mut self, request_id: &str) -> Result<usize, String> {
        self.send(request_id, Req::ListPeers(pb::ListPeersRequest {}))
            .await?;
        match self.reply_to(request_id).await? {
            Resp::PeerList(list) => Ok(list.peers.len()),
            other => Err(format!("{}: list_peers answered {other:?}", self.me)),
        }
    }

    /// Relays an ICE candidate to this peer itself and waits for it. The stream's queue is
    /// first in, first out, so everything queued for this peer before it has been read (and
    /// noted) by then. A queue still full of peer.joined refuses it: read on and try again.
    async fn fence(&mut self, tag: &str) -> Result<(), String> {
        for _ in 0..100 {
            let candidate = Req::IceCandidate(pb::IceCandidateRequest {
                to_peer_id: self.me.clone(),
                candidate: tag.to_owned(),
                ..Default::default()
            });
            self.send(tag, candidate).await?;
            let r = self.next_reply().await?;
            match (r.request_id == tag, r.response) {
                (true, Some(Resp::Ack(_))) => {
                    // The candidate was queued before this ack, so it has been read.
                    return match self.heard.fences.iter().filter(|f| *f == tag).count() {
                        1 => Ok(()),
                        n => Err(format!("{}: fence '{tag}' arrived {n} times", self.me)),
                    };
                }
                (true, Some(Resp::Error(e))) if e.code == "UNAVAILABLE" => continue,
                (_, other) => {
                    return Err(format!("{}: fence '{tag}' answered {other:?}", self.me));
                }
            }
        }
        Err(format!("{}: fence '{tag}' refused 100 times", self.me))
    }
}

/// Peer i's whole life. The barriers keep the phases apart: nobody offers before everyone
/// has announced, and the last check starts when every offer and answer has been acked.
async fn peer(
    i: usize,
    channel: Channel,
    barrier: Arc<Barrier>,
    progress: Arc<Progress>,
) -> Result<usize, String> {
    let (me, prev, next) = (
        name(i),
        name((i + PEERS - 1) % PEERS),
        name((i + 1) % PEERS),
    );
    let mut s = Stream::open(channel, me.clone()).await?;
    progress.opened.fetch_add(1, Ordering::Relaxed);
    let announce = pb::AnnounceRequest {
        peer_id: me.clone(),
        capabilities: Some(pb::PeerCapabilities {
            audio: true,
            video: true,
            data: false,
            extensions: String::new(),
        }),
        ..Default::default()
    };
    s.send("announce", Req::Announce(announce)).await?;
    let before: HashSet<String> = match s.reply_to("announce").await? {
        Resp::Ack(ack) => ack.other_peers.into_iter().map(|p| p.peer_id).collect(),
        other => return Err(format!("{me}: announce answered {other:?}")),
    };
    progress.announced.fetch_add(1, Ordering::Relaxed);
    barrier.wait().await;

    // Every announce is acked, so every peer.joined has been queued (or dropped for a full
    // queue, which the server allows for membership news); read them all.
    s.fence("fence-1").await?;
    if i == 0 {
        let listed = s.list_peers("list").await?;
        if listed != PEERS {
            return Err(format!("{me}: list_peers saw {listed} peers, not {PEERS}"));
        }
    }
    progress.fenced.fetch_add(1, Ordering::Relaxed);
    barrier.wait().await;

    let offer = Req::Offer(pb::OfferRequest {
        to_peer_id: next.clone(),
        sdp: format!("v=0 offer {me}->{next}"),
    });
    s.send("offer", offer).await?;
    let (mut offer_acked, mut answered, mut answer_acked) = (false, false, false);
    while !(offer_acked && answer_acked && !s.heard.answers.is_empty()) {
        if !answered && !s.heard.offers.is_empty() {
            let answer = Req::Answer(pb::AnswerRequest {
                to_peer_id: prev.clone(),
                sdp: format!("v=0 answer {me}->{prev}"),
                r#type: "answer".into(),
            });
            s.send("answer", answer).await?;
            answered = true;
            continue;
        }
        let r = s.next().await?;
        match (r.request_id.as_str(), r.response) {
            (_, Some(Resp::Notification(n))) => s.note(&n),
            ("offer", Some(Resp::Ack(_))) => offer_acked = true,
            ("answer", Some(Resp::Ack(_))) => answer_acked = true,
            (id, other) => return Err(format!("{me}: unexpected reply to '{id}': {other:?}")),
        }
    }
    progress.exchanged.fetch_add(1, Ordering::Relaxed);
    barrier.wait().await;

    // Every offer and answer was acked to its sender after the server queued it for its
    // target: anything sent to this peer (a duplicate too) is read before this fence.
    s.fence("fence-2").await?;
    let want_offer = (prev.clone(), format!("v=0 offer {prev}->{me}"));
    let want_answer = (next.clone(), format!("v=0 answer {next}->{me}"));
    if s.heard.offers != [want_offer] {
        return Err(format!(
            "{me}: offers received {:?}, want exactly one from {prev}",
            s.heard.offers
        ));
    }
    if s.heard.answers != [want_answer] {
        return Err(format!(
            "{me}: answers received {:?}, want exactly one from {next}",
            s.heard.answers
        ));
    }
    // Membership news may be dropped for a full queue, but never doubled, never about this
    // peer itself, and never about a peer its announce reply already listed (the registry
    // picks who hears of an announce under the lock that inserts it).
    let mut joined = HashSet::new();
    for id in &s.heard.joined {
        if *id == me || !joined.insert(id) {
            return Err(format!("{me}: peer.joined for '{id}' (itself, or twice)"));
        }
        if before.contains(id) {
            return Err(format!(
                "{me}: peer.joined for '{id}', which its announce reply listed already"
            ));
        }
    }
    progress.checked.fetch_add(1, Ordering::Relaxed);
    Ok(s.heard.joined.len())
}

/// The server's own count of open Signal streams, announced peers and pending offers, from
/// its Prometheus endpoint.
async fn gauges(metrics: &str) -> (u64, u64, u64) {
    let mut conn = tokio::net::TcpStream::connect(metrics)
        .await
        .expect("connect to /metrics");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    (
        value("remotemedia_active_streams{service=\"signaling\"}"),
        value("remotemedia_signaling_peers"),
        value("remotemedia_signaling_pending_offers"),
    )
}

async fn peers_left(client: &mut WebRtcSignalingClient<Channel>) -> usize {
    client
        .get_peers(pb::GetPeersRequest {})
        .await
        .expect("GetPeers")
        .into_inner()
        .peers
        .len()
}

struct Round {
    took: Duration,
    /// VmRSS when the first peer is done (every stream still open).
    busy: u64,
    /// VmRSS once every peer has left.
    after: u64,
    /// peer.joined notifications delivered, over all peers.
    joined: usize,
}

/// 1000 streams announce, offer, answer, check and leave; returns once GetPeers and the
/// server's own gauges say nothing is left.
async fn round(server: &Server, channels: &[Channel], number: usize, cold: u64) -> Round {
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(PEERS));
    let progress = Arc::new(Progress::default());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..PEERS {
        let channel = channels[i % channels.len()].clone();
        tasks.spawn(peer(i, channel, barrier.clone(), progress.clone()));
    }
    let all = async {
        let mut joined = Vec::with_capacity(PEERS);
        let mut busy = 0;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(n)) => joined.push(n),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(format!("a peer task failed: {e}")),
            }
            if joined.len() == 1 {
                busy = server.rss();
            }
        }
        Ok((joined, busy))
    };
    let (joined, busy) = match tokio::time::timeout(DEADLINE, all).await {
        Err(_) => panic!("round {number}: not done within {DEADLINE:?}: {progress}"),
        Ok(Err(e)) => panic!("round {number}: {e} ({progress})"),
        Ok(Ok(r)) => r,
    };
    let took = started.elapsed();

    // Every stream is closed; the server removes each peer when it sees its stream end.
    let mut control = WebRtcSignalingClient::new(channels[0].clone());
    let settle = Instant::now();
    loop {
        let left = peers_left(&mut control).await;
        let (streams, peers, pending) = gauges(&server.metrics).await;
        if (left, streams, peers, pending) == (0, 0, 0, 0) {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "round {number}: 30 s after every stream closed, GetPeers lists {left} peers and the \
             server counts {streams} open Signal streams, {peers} peers, {pending} pending offers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server hands freed heap pages back every 5 s; wait for it to get near its start.
    let settle = Instant::now();
    let mut after = server.rss();
    while after > cold + RSS_TOLERANCE && settle.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = server.rss();
    }
    Round {
        took,
        busy,
        after,
        joined: joined.iter().sum(),
    }
}

/// Memory. The (debug) server starts at about 19 MiB and holds 80-110 MiB with the 1000
/// streams open: each stream's queue of up to 256 responses fills with the flood of
/// 1000 x 999 peer.joined. Once every peer has left it holds none of that, and the server
/// hands the freed pages back to the kernel (glibc keeps them otherwise: 81-137 MiB after a
/// round before it did). So after each round VmRSS must come back within 20 MiB of the cold
/// start; a leak of what a stream holds (its queue, its HTTP/2 stream, its task: about 80 KiB
/// each at the peak) would keep about 80 MiB per round.
const ROUNDS: usize = 3;
const RSS_TOLERANCE: u64 = 20 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_signal_streams_relay_each_offer_and_answer_once_and_memory_returns() {
    let server = Server::start();
    let url = format!("http://{}", server.grpc);
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        // Each `connect` is its own HTTP/2 connection; clones of one share it.
        let channel = Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .expect("connect to the server");
        channels.push(channel);
    }
    let mut control = WebRtcSignalingClient::new(channels[0].clone());
    assert_eq!(peers_left(&mut control).await, 0);
    let cold = server.rss();

    let mut after = Vec::new();
    for number in 1..=ROUNDS {
        let r = round(&server, &channels, number, cold).await;
        eprintln!(
            "round {number}: {PEERS} streams on {CONNECTIONS} connections announced, offered, \
             answered, checked and left in {:.2} s; peer.joined delivered: {} of {} (the rest \
             dropped for full queues, as the server allows); server VmRSS {:.1} MiB with every \
             stream open, {:.1} MiB after (cold start {:.1} MiB)",
            r.took.as_secs_f64(),
            r.joined,
            PEERS * (PEERS - 1) / 2,
            mib(r.busy),
            mib(r.after),
            mib(cold),
        );
        after.push(r.after);
    }
    assert!(
        after.iter().all(|&a| a <= cold + RSS_TOLERANCE),
        "server VmRSS after each round {:?} MiB: not back within {} MiB of its cold start \
         {:.1} MiB",
        after
            .iter()
            .map(|&b| (mib(b) * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        RSS_TOLERANCE >> 20,
        mib(cold)
    );
}
