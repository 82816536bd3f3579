//! The `ws://` signaling client against a scripted server that does what a busy real one may:
//! tell us of a peer that announced while ours was being registered, and pass on a signal to
//! us, before it answers our announce. Nothing of that may be lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use remotemedia_signaling::reconnect::LinkEvent;
use remotemedia_signaling::{Event, PeerInfo, RpcError, Signal, WsClient};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Accepts one client; answers its announce only after a `peer.joined` for "cam1", a
/// `peer.joined` and `peer.left` for "gone", and an offer from "cam1" to the announcer.
async fn scripted_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no announce")
        };
        let announce: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(announce["method"], "peer.announce");
        let me = announce["params"]["peer_id"].as_str().unwrap().to_owned();
        let peer = |id: &str| json!({"peer_id": id, "capabilities": {}, "user_data": {}});
        let early = [
            json!({"jsonrpc": "2.0", "method": "peer.joined", "params": peer("cam1")}),
            json!({"jsonrpc": "2.0", "method": "peer.joined", "params": peer("gone")}),
            json!({"jsonrpc": "2.0", "method": "peer.left", "params": {"peer_id": "gone"}}),
            json!({"jsonrpc": "2.0", "method": "peer.offer",
                   "params": {"from": "cam1", "to": me, "sdp": "v=0 early", "type": "offer"}}),
        ];
        for message in early {
            ws.send(Message::text(message.to_string())).await.unwrap();
        }
        let reply = json!({"jsonrpc": "2.0", "id": announce["id"],
                           "result": {"peer_id": me, "peers_count": 1, "other_peers": []}});
        ws.send(Message::text(reply.to_string())).await.unwrap();
        // Keep the connection open while the test runs.
        while ws.next().await.is_some() {}
    });
    url
}

#[tokio::test]
async fn what_the_server_says_before_answering_the_announce_is_kept() {
    let url = scripted_server().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let client = WsClient::connect(
        &url,
        PeerInfo {
            peer_id: "studio".into(),
            capabilities: json!({}),
            user_data: json!({}),
        },
        Arc::new(move |event: Event| -> Result<(), RpcError> {
            seen.lock().unwrap().push(event);
            Ok(())
        }),
        Arc::new(|_: RpcError| {}),
        Arc::new(|_: LinkEvent| {}),
    )
    .await
    .expect("connected");
    // The peer that joined meanwhile is present (a connect-to would call it); the one that
    // came and went is not.
    let present: Vec<&str> = client
        .present()
        .iter()
        .map(|p| p.peer_id.as_str())
        .collect();
    assert_eq!(present, ["cam1"]);
    // The offer reaches the handler.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let offered = events.lock().unwrap().iter().any(|e| {
            matches!(e, Event::Signal(Signal::Offer { from, sdp, .. }) if from == "cam1" && sdp == "v=0 early")
        });
        if offered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the early offer was lost"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
