//! Bounded fuzzing of what peers and clients send: 100 000 mutations each of JSON-RPC requests
//! and of gRPC data buffers. Nothing panics or hangs, and every refusal says what is wrong.

use prost::Message;
use remotemedia_runtime::data::{
    Bytes, ControlMessage, DType, PixelFormat, TensorData, VideoFrame,
};
use remotemedia_runtime::mutate::Mutator;
use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData};
use remotemedia_signaling::grpc::{convert, pb};
use remotemedia_signaling::protocol::parse_request;
use serde_json::json;

const CASES: usize = 100_000;

#[test]
fn mutated_json_rpc_requests_are_parsed_or_refused_clearly() {
    let cand = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host";
    let seeds: Vec<Vec<u8>> = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "peer.announce",
               "params": {"peer_id": "a", "capabilities": {"audio": true}, "metadata": {"x": 1}}}),
        json!({"jsonrpc": "2.0", "id": "2", "method": "peer.offer", "params": {"to": "b", "sdp": "v=0 offer"}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "peer.answer",
               "params": {"from": "b", "to": "a", "sdp": "v=0 answer"}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "peer.ice_candidate",
               "params": {"to": "b", "candidate": cand, "sdp_mid": "0", "sdp_m_line_index": 0}}),
        json!({"jsonrpc": "2.0", "id": 5, "method": "peer.list"}),
        json!({"jsonrpc": "2.0", "id": 6, "method": "peer.state_change", "params": {"to": "b", "state": "connected"}}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    let mut mutator = Mutator::new(0x5eed_0001);
    let mut refused = 0;
    for case in 0..CASES {
        let bytes = mutator.mutate(&seeds[case % seeds.len()], b"{}[]\":,0123456789.-_ ");
        let text = String::from_utf8_lossy(&bytes);
        if let Err((_, error)) = parse_request(&text) {
            assert!(!error.message.trim().is_empty(), "case {case}: {text}");
            refused += 1;
        }
    }
    assert!(refused > CASES / 3, "{refused}");
}

fn buffers() -> Vec<Vec<u8>> {
    let mut audio = AudioFrame::new(AudioSamples::from_vec(vec![0.25; 64]), 16000, 1);
    audio.pts = Some(20_000_000);
    [
        RuntimeData::Audio(audio),
        RuntimeData::Video(VideoFrame {
            data: Bytes::from(vec![7u8; 6]),
            width: 2,
            height: 2,
            format: PixelFormat::I420,
            stream_id: None,
            pts: Some(1),
            keyframe: true,
        }),
        RuntimeData::Text("hello".into()),
        RuntimeData::Json(json!({"a": [1, 2]})),
        RuntimeData::Binary(Bytes::from_static(b"\x00\x01")),
        RuntimeData::Tensor(TensorData {
            shape: vec![2, 2],
            dtype: DType::F32,
            data: Bytes::from(vec![0u8; 16]),
        }),
        RuntimeData::Control(ControlMessage::EndOfStream),
    ]
    .iter()
    .map(|d| convert::from_runtime(d).encode_to_vec())
    .collect()
}

#[test]
fn mutated_grpc_data_buffers_are_converted_or_refused_clearly() {
    let seeds = buffers();
    let mut mutator = Mutator::new(0x5eed_0002);
    let (mut undecodable, mut refused) = (0, 0);
    for case in 0..CASES {
        let bytes = mutator.mutate(
            &seeds[case % seeds.len()],
            &[0, 1, 8, 0x10, 0x12, 0x1a, 0xff],
        );
        let Ok(buffer) = pb::DataBuffer::decode(&bytes[..]) else {
            undecodable += 1;
            continue;
        };
        if let Err(why) = convert::to_runtime(buffer) {
            assert!(!why.to_string().trim().is_empty(), "case {case}");
            refused += 1;
        }
    }
    assert!(
        undecodable + refused > CASES / 10,
        "{undecodable} {refused}"
    );
}
