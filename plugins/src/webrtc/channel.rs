//! What goes over a peer's data channel: text or binary messages, queued per peer and sent in
//! order by one task. A full queue (a peer not reading) drops; it never blocks the sender.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::data_channel::RTCDataChannel;

use super::RUNTIME;

#[derive(Clone, Debug)]
pub enum Payload {
    Text(String),
    Binary(Bytes),
}

#[derive(Clone)]
pub struct Outbox(mpsc::Sender<Payload>);

impl Outbox {
    const LEN: usize = 256;

    pub fn open(channel: Arc<RTCDataChannel>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Payload>(Self::LEN);
        RUNTIME.spawn(async move {
            while let Some(payload) = rx.recv().await {
                let sent = match payload {
                    Payload::Text(text) => channel.send_text(text).await,
                    Payload::Binary(data) => channel.send(&data).await,
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        Self(tx)
    }

    pub fn send(&self, payload: Payload) -> bool {
        self.0.try_send(payload).is_ok()
    }
}

/// Queues `payload` for every channel; returns how many took it.
pub fn send_all(channels: Vec<Outbox>, payload: &Payload) -> u32 {
    channels.iter().filter(|c| c.send(payload.clone())).count() as u32
}
