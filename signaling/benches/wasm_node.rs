//! B17 and B18: what a WasmNode costs.
//!
//!     cargo bench -p remotemedia-signaling --bench wasm_node [-- b17|b18]
//!
//! - B17: a gain of 0.5 on 10 ms of 48 kHz audio, mono and stereo, as a WasmNode against the
//!   same gain as a native node, both through the `Node` trait on the same buffers, interleaved
//!   in rounds: CPU time per buffer and the ratio. Two modules: `examples/wasm/gain.c` as
//!   scripts/setup.sh builds it (clang -O2 -msimd128, into target/wasm/), and the loop written
//!   by hand in the text format (WASM SIMD, four samples a step, not unrolled); and a module
//!   that does no work, for what a call costs beside the module's loop.
//! - B18: `call_remote_service` from a module to a PassThrough on an in-process
//!   remotemedia-server on 127.0.0.1, against a RemotePipelineNode calling the same server and
//!   manifest directly, interleaved: wall time per call, medians, and the added time.

use std::time::Instant;

use remotemedia_runtime::node::Emitter;
use remotemedia_runtime::nodes::remote_pipeline;
use remotemedia_runtime::nodes::wasm;
use remotemedia_runtime::params::validate;
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Node, NodeError, NodeSpec, Packet, RuntimeData,
};
use serde_json::{Value, json};

#[path = "../../runtime-bridge/benches/support/cpu.rs"]
mod cpu;
#[path = "../tests/support/server.rs"]
mod server;
#[path = "../tests/support/wat.rs"]
mod wat;
use cpu::cpu_seconds;

/// A gain of 0.5, four samples at a time (WASM SIMD), as a native compiler vectorises the loop.
const GAIN: &str = r#"(func (export "gain") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (v128.store (i32.add (local.get $out) (local.get $i))
        (f32x4.mul (v128.load (i32.add (local.get $in) (local.get $i))) (f32x4.splat (f32.const 0.5))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (i32.store (local.get $out_len) (local.get $len))
    (i32.const 0))"#;

/// No work: returns the input's length as its output's, the samples left as they are. What a
/// call costs beside the module's own work.
const NO_WORK: &str = r#"(func (export "gain") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
    (i32.store (local.get $out_len) (local.get $len))
    (i32.const 0))"#;

/// Asks service "Echo" with its input and writes the answer.
const ASKING: &str = r#"(data (i32.const 16) "Echo")
  (func (export "f") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
    (call $ask (i32.const 16) (i32.const 4) (local.get $in) (local.get $len) (local.get $out) (local.get $out_len)))"#;

/// The native twin of the module: a new buffer of the input times 0.5.
struct NativeGain;

impl Node for NativeGain {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(a) = &input.data else {
            return Ok(());
        };
        let samples: Vec<f32> = a.samples.iter().map(|s| s * 0.5).collect();
        let mut f = AudioFrame::new(AudioSamples::from_vec(samples), a.sample_rate, a.channels);
        f.pts = a.pts;
        out.emit_at(RuntimeData::Audio(f), input.pts);
        Ok(())
    }
}

fn node(spec: &NodeSpec, params: Value) -> Box<dyn Node> {
    let params = validate(spec.params, params.as_object().unwrap()).unwrap();
    (spec.create)(&params).unwrap()
}

fn file(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("rm-b17-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The module setup built from examples/wasm/gain.c.
fn built_gain() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/gain.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run bash scripts/setup.sh",
        path.display()
    );
    path.display().to_string()
}

fn b17(channels: u16, module: &str, wasm_path: &str) {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 20_000;
    let buffer = {
        let samples: Vec<f32> = (0..480 * usize::from(channels))
            .map(|i| (i as f32 * 0.01).sin())
            .collect();
        let mut f = AudioFrame::new(AudioSamples::from_vec(samples), 48_000, channels);
        f.pts = Some(0);
        Packet::new(RuntimeData::Audio(f))
    };
    let mut wasm = node(
        &wasm::SPEC,
        json!({"wasm_path": wasm_path, "function_name": "gain"}),
    );
    let mut native: Box<dyn Node> = Box::new(NativeGain);
    let run = |n: &mut Box<dyn Node>| {
        let start = cpu_seconds();
        for _ in 0..PER_ROUND {
            let mut out = Emitter::default();
            n.process(buffer.clone(), &mut out).unwrap();
            std::hint::black_box(out.into_packets());
        }
        (cpu_seconds() - start) / PER_ROUND as f64
    };
    let (mut w, mut n, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    // A first round of each, not counted: caches, the allocator's free lists, the watchdog.
    run(&mut wasm);
    run(&mut native);
    for _ in 0..ROUNDS {
        let (a, b) = (run(&mut wasm), run(&mut native));
        w.push(a);
        n.push(b);
        // Each round's two runs are next to each other in time: their ratio is what a busy
        // neighbour on this shared machine disturbs least.
        ratios.push(a / b);
    }
    let (w, n, ratio) = (median(&mut w), median(&mut n), median(&mut ratios));
    println!(
        "B17 {module} on 10 ms of 48 kHz, {channels} channel(s), against the native gain, {ROUNDS} rounds of {PER_ROUND} buffers, CPU per buffer (medians; the ratio is the median of the rounds' ratios)"
    );
    println!("  WasmNode      {:7.3} us", w * 1e6);
    println!("  native node   {:7.3} us", n * 1e6);
    println!("  ratio         {ratio:7.2}x");
}

fn b18() {
    const CALLS: usize = 400;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = server::start(&rt);
    let endpoint = format!("grpc://{}", server.grpc_addr);
    let far = json!({"version": "v1", "nodes": [{"id": "far", "node_type": "PassThrough"}]});
    let mut wasm = node(
        &wasm::SPEC,
        json!({"wasm_path": file("ask.wat", &wat::module(wat::ASK, ASKING)), "function_name": "f", "input": "text",
               "output": "json", "output_capacity": 4096, "timeout_ms": 5000,
               "services": {"Echo": {"endpoint": endpoint, "manifest": far}}}),
    );
    let mut direct = node(
        &remote_pipeline::SPEC,
        json!({"endpoint": endpoint, "manifest": far}),
    );
    let time = |n: &mut Box<dyn Node>, i: usize| {
        // A new text each time: the host's -2 retry cache never answers.
        let input = Packet::new(RuntimeData::Text(format!("call {i}")));
        let start = Instant::now();
        let mut out = Emitter::default();
        n.process(input, &mut out).unwrap();
        let took = start.elapsed().as_secs_f64();
        assert!(!out.into_packets().is_empty());
        took
    };
    for i in 0..20 {
        time(&mut wasm, i);
        time(&mut direct, i);
    }
    let (mut w, mut d) = (Vec::new(), Vec::new());
    for i in 0..CALLS {
        w.push(time(&mut wasm, i));
        d.push(time(&mut direct, i));
    }
    let (w, d) = (median(&mut w), median(&mut d));
    println!(
        "B18 call_remote_service vs RemotePipelineNode, PassThrough on 127.0.0.1, {CALLS} calls each, wall time (medians)"
    );
    println!("  WasmNode call_remote_service  {:8.1} us", w * 1e6);
    println!("  RemotePipelineNode            {:8.1} us", d * 1e6);
    println!("  added per call                {:8.1} us", (w - d) * 1e6);
    rt.block_on(server.shutdown());
}

fn main() {
    // `-- b17` or `-- b18` runs only that one (cargo bench also passes `--bench`).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|a| a == name);
    if wanted("b17") {
        let built = built_gain();
        let written = file("gain.wat", &wat::module("", GAIN));
        for channels in [1, 2] {
            b17(
                channels,
                "gain x0.5 in examples/wasm/gain.c (clang -O2 -msimd128)",
                &built,
            );
            b17(channels, "gain x0.5 in hand-written WAT", &written);
        }
        let idle = file("no-work.wat", &wat::module("", NO_WORK));
        b17(
            1,
            "no work (a WAT module that only writes its length)",
            &idle,
        );
    }
    if wanted("b18") {
        b18();
    }
}
