//! The JSON-RPC WebSocket signaling server on its own, driven by real WebSocket clients over
//! loopback: every method, every error, and that one client's trouble stays its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use remotemedia_signaling::protocol::{self, RpcError};
use remotemedia_signaling::{
    Event, Page, PeerInfo, PeerRegistry, ServerOptions, Signal, SignalingServer,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server(options: ServerOptions) -> (SignalingServer, Arc<PeerRegistry>, String) {
    let registry = PeerRegistry::new();
    let server = SignalingServer::bind("127.0.0.1:0".parse().unwrap(), registry.clone(), options)
        .await
        .unwrap();
    let url = format!("ws://{}/ws", server.local_addr());
    (server, registry, url)
}

struct Client {
    ws: Ws,
    next_id: u64,
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws, next_id: 1 }
    }

    async fn announced(url: &str, peer_id: &str) -> Self {
        let mut c = Self::connect(url).await;
        let r = c.call("peer.announce", json!({"peer_id": peer_id})).await;
        assert_eq!(r["result"]["peer_id"], peer_id, "{r}");
        c
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Sends a request and returns its response, skipping notifications that arrive first.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        loop {
            let m = self.recv().await;
            if m.get("id") == Some(&json!(id)) {
                return m;
            }
        }
    }

    async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("no message within 5 s")
                .expect("connection ended")
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// The next notification with this method.
    async fn notification(&mut self, method: &str) -> Value {
        loop {
            let m = self.recv().await;
            if m["method"] == method {
                return m["params"].clone();
            }
        }
    }

    /// Asserts that nothing arrives for a moment.
    async fn quiet(&mut self) {
        let r = tokio::time::timeout(Duration::from_millis(300), self.ws.next()).await;
        assert!(r.is_err(), "unexpected message: {r:?}");
    }
}

fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}

#[tokio::test]
async fn announce_list_and_membership_notifications() {
    let (_s, _r, url) = server(ServerOptions::default()).await;
    let mut a = Client::announced(&url, "alice").await;
    let mut b = Client::connect(&url).await;
    let r = b
        .call(
            "announce",
            json!({"peer_id": "bob", "capabilities": {"audio": true}, "user_data": {"name": "B"}}),
        )
        .await;
    assert_eq!(r["result"]["peers_count"], 2);
    assert_eq!(r["result"]["other_peers"][0]["peer_id"], "alice");
    let joined = a.notification("peer.joined").await;
    assert_eq!(joined["peer_id"], "bob");
    assert_eq!(joined["capabilities"]["audio"], true);
    assert_eq!(joined["user_data"]["name"], "B");

    let list = a.call("peer.list", json!({})).await;
    let ids: Vec<_> = list["result"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["alice", "bob"]);

    let r = b.call("peer.disconnect", json!({})).await;
    assert_eq!(r["result"]["disconnected"], "bob");
    let left = a.notification("peer.left").await;
    assert_eq!(
        (left["peer_id"].as_str(), left["reason"].as_str()),
        (Some("bob"), Some("disconnect"))
    );

    drop(a);
    let mut c = Client::announced(&url, "carol").await;
    let list = c.call("peer.list", json!(null)).await;
    assert_eq!(
        list["result"]["peers"].as_array().unwrap().len(),
        1,
        "{list}"
    );
}

#[tokio::test]
async fn offer_answer_and_candidates_are_relayed_with_the_senders_id() {
    let (_s, _r, url) = server(ServerOptions::default()).await;
    let mut a = Client::announced(&url, "a").await;
    let mut b = Client::announced(&url, "b").await;

    let r = a
        .call("peer.offer", json!({"to": "b", "sdp": "v=0 offer"}))
        .await;
    assert_eq!(r["result"]["delivered"], true);
    let offer = b.notification("peer.offer").await;
    assert_eq!(
        (offer["from"].as_str(), offer["sdp"].as_str()),
        (Some("a"), Some("v=0 offer"))
    );

    b.call(
        "answer",
        json!({"from": "b", "to": "a", "sdp": "v=0 answer"}),
    )
    .await;
    let answer = a.notification("peer.answer").await;
    assert_eq!(answer["sdp"], "v=0 answer");

    let cand = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host";
    a.call(
        "ice_candidate",
        json!({"to": "b", "candidate": cand, "sdp_mid": "0", "sdp_m_line_index": 0}),
    )
    .await;
    let c = b.notification("peer.ice_candidate").await;
    assert_eq!(
        (c["candidate"].as_str(), c["sdp_mid"].as_str()),
        (Some(cand), Some("0"))
    );
    assert_eq!(c["sdp_m_line_index"], 0);

    b.call(
        "peer.state_change",
        json!({"to": "a", "state": "connected"}),
    )
    .await;
    assert_eq!(
        a.notification("peer.state_change").await["state"],
        "connected"
    );
    b.call("peer.disconnect", json!({"to": "a"})).await;
    assert_eq!(a.notification("peer.disconnect").await["from"], "b");
}

#[tokio::test]
async fn errors_go_to_the_sender_only() {
    let (_s, _r, url) = server(ServerOptions::default()).await;
    let mut a = Client::announced(&url, "a").await;
    let mut b = Client::announced(&url, "b").await;
    a.notification("peer.joined").await;

    a.send_text("{not json".into()).await;
    let r = a.recv().await;
    assert_eq!(error_code(&r), protocol::PARSE_ERROR);
    assert_eq!(r["id"], Value::Null);

    let r = a.call("peer.teleport", json!({})).await;
    assert_eq!(error_code(&r), protocol::METHOD_NOT_FOUND);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("peer.teleport")
    );

    for bad in [
        json!({"to": "b"}),
        json!({"to": "b", "sdp": 5}),
        json!({"to": "b", "sdp": ""}),
        json!({"to": "b", "sdp": "v=0", "color": "red"}),
        json!({"from": "b", "to": "b", "sdp": "v=0"}),
    ] {
        let r = a.call("peer.offer", bad.clone()).await;
        assert_eq!(error_code(&r), protocol::INVALID_PARAMS, "{bad} -> {r}");
    }
    let r = a
        .call("peer.ice_candidate", json!({"to": "b", "candidate": 1}))
        .await;
    assert_eq!(error_code(&r), protocol::INVALID_PARAMS);
    let r = a.call("peer.announce", json!({"peer_id": "again"})).await;
    assert_eq!(error_code(&r), protocol::INVALID_PARAMS);

    let r = a
        .call("peer.offer", json!({"to": "nobody", "sdp": "v=0"}))
        .await;
    assert_eq!(error_code(&r), protocol::PEER_NOT_FOUND);
    assert_eq!(r["error"]["data"]["code"], "PEER_NOT_FOUND");

    let mut c = Client::connect(&url).await;
    let r = c.call("peer.offer", json!({"to": "a", "sdp": "v=0"})).await;
    assert_eq!(error_code(&r), protocol::NOT_ANNOUNCED);
    let r = c.call("peer.announce", json!({"peer_id": "a"})).await;
    assert_eq!(error_code(&r), protocol::PEER_ID_TAKEN);
    let r = c.call("peer.announce", json!({"peer_id": ""})).await;
    assert_eq!(error_code(&r), protocol::INVALID_PARAMS);
    c.send_text(r#"{"jsonrpc":"1.0","id":1,"method":"peer.list"}"#.into())
        .await;
    assert_eq!(error_code(&c.recv().await), protocol::INVALID_REQUEST);
    c.send_text(r#"{"jsonrpc":"2.0","id":2,"method":"peer.list","params":[1]}"#.into())
        .await;
    assert_eq!(error_code(&c.recv().await), protocol::INVALID_PARAMS);

    // None of that reached b, and a still works.
    b.quiet().await;
    a.call("peer.offer", json!({"to": "b", "sdp": "v=0"})).await;
    assert_eq!(b.notification("peer.offer").await["from"], "a");
}

#[tokio::test]
async fn an_oversized_message_closes_only_its_connection() {
    let options = ServerOptions {
        max_message_bytes: 4096,
        ..Default::default()
    };
    let (_s, _r, url) = server(options).await;
    let mut a = Client::announced(&url, "a").await;
    let mut big = Client::announced(&url, "big").await;
    a.notification("peer.joined").await;

    let sdp = "x".repeat(10_000);
    big.send_text(
        json!({"jsonrpc":"2.0","id":1,"method":"peer.offer","params":{"to":"a","sdp":sdp}})
            .to_string(),
    )
    .await;
    let r = big.recv().await;
    assert_eq!(error_code(&r), protocol::MESSAGE_TOO_LARGE, "{r}");
    let closed = tokio::time::timeout(Duration::from_secs(5), big.ws.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert_eq!(a.notification("peer.left").await["peer_id"], "big");
    assert_eq!(
        a.call("peer.list", json!({})).await["result"]["peers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_and_does_not_stall_others() {
    let options = ServerOptions {
        rate_per_sec: 50.0,
        burst: 50.0,
        ..Default::default()
    };
    let (_s, _r, url) = server(options).await;
    let mut flood = Client::announced(&url, "flood").await;
    let mut a = Client::announced(&url, "a").await;
    let mut b = Client::announced(&url, "b").await;

    // The flooder sends a burst of offers to b without reading its replies.
    let flood_started = std::time::Instant::now();
    let frame =
        json!({"jsonrpc":"2.0","method":"peer.offer","params":{"to":"b","sdp":"v=0"}}).to_string();
    for _ in 0..2000 {
        flood.send_text(frame.clone()).await;
    }
    // a and b still talk (each answer within the client's 5 s receive timeout).
    for _ in 0..20 {
        let r = a
            .call("peer.offer", json!({"to": "b", "sdp": "v=0 from a"}))
            .await;
        assert_eq!(r["result"]["delivered"], true, "{r}");
    }

    // b got at most the flooder's burst, and every one of a's offers.
    let mut from_flood = 0;
    let mut from_a = 0;
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(500), b.ws.next()).await
    {
        let m: Value = serde_json::from_str(t.as_str()).unwrap();
        match m["params"]["from"].as_str() {
            Some("flood") => from_flood += 1,
            Some("a") => from_a += 1,
            _ => {}
        }
    }
    assert_eq!(from_a, 20);
    // The bucket refills while the server works through the flood, so what passes depends on
    // how long that took here: the burst plus the rate over the elapsed time (a few dozen on an
    // idle machine, more on a loaded one), far below the 2000 sent.
    let allowed = 50.0 + 50.0 * flood_started.elapsed().as_secs_f64();
    assert!(
        (from_flood as f64) <= allowed,
        "rate limit let {from_flood} through, at most {allowed:.0} allowed"
    );
    let mut limited = 0;
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(500), flood.ws.next()).await
    {
        let m: Value = serde_json::from_str(t.as_str()).unwrap();
        if m["error"]["code"] == protocol::RATE_LIMITED {
            limited += 1;
        }
    }
    assert!(limited > 1000, "only {limited} RATE_LIMITED replies");
}

#[tokio::test]
async fn a_local_peer_receives_signals_and_its_refusal_reaches_the_sender() {
    let (_s, registry, url) = server(ServerOptions::default()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let local = registry
        .register_local(
            PeerInfo {
                peer_id: "server".into(),
                capabilities: json!({"video": true}),
                user_data: Value::Null,
            },
            Arc::new(move |event| {
                if let Event::Signal(Signal::Offer { from, .. }) = &event
                    && from == "late"
                {
                    return Err(RpcError::new(
                        protocol::MAX_PEERS_REACHED,
                        remotemedia_runtime::ErrorCode::MaxPeersReached,
                        "max-peers=1 reached",
                    ));
                }
                seen2.lock().unwrap().push(event);
                Ok(())
            }),
        )
        .unwrap();
    let mut a = Client::connect(&url).await;
    let r = a.call("peer.announce", json!({"peer_id": "a"})).await;
    assert_eq!(r["result"]["other_peers"][0]["peer_id"], "server");
    a.call("peer.offer", json!({"to": "server", "sdp": "v=0"}))
        .await;
    local
        .send(Signal::Answer {
            from: "server".into(),
            to: "a".into(),
            sdp: "v=0 answer".into(),
        })
        .unwrap();
    assert_eq!(a.notification("peer.answer").await["from"], "server");

    let mut late = Client::announced(&url, "late").await;
    let r = late
        .call("peer.offer", json!({"to": "server", "sdp": "v=0"}))
        .await;
    assert_eq!(error_code(&r), protocol::MAX_PEERS_REACHED);
    assert_eq!(r["error"]["data"]["code"], "MAX_PEERS_REACHED");

    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(&events[0], Event::Joined(p) if p.peer_id == "a"),
        "{events:?}"
    );
    assert!(matches!(&events[1], Event::Signal(Signal::Offer { from, .. }) if from == "a"));
    drop(late);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().iter().any(
        |e| matches!(e, Event::Left { peer_id, reason } if peer_id == "late" && reason == "connection closed")
    ));
    drop(local);
    while a.notification("peer.left").await["peer_id"] != "server" {}
}

#[tokio::test]
async fn pages_are_served_next_to_the_websocket() {
    let options = ServerOptions {
        pages: vec![Page {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            body: b"<h1>hello</h1>".as_slice().into(),
        }],
        ..Default::default()
    };
    let (s, _r, _url) = server(options).await;
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }
    let page = get(s.local_addr(), "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.ends_with("<h1>hello</h1>"));
    assert!(
        get(s.local_addr(), "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );
}
