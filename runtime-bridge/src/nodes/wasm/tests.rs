//! The ABI, the limits and the sandbox, on small modules written in the text format.

use serde_json::{Value, json};

use super::*;
use crate::data::{AudioFrame, AudioSamples, RuntimeData};
use crate::params::validate;

/// A module from `body` (functions and data) with a bump allocator and one page of memory,
/// written to a file of its own.
fn module(dir: &tempdir::Dir, name: &str, body: &str) -> String {
    module_importing(dir, name, "", body)
}

/// The same, with `imports` (which come first in a module).
fn module_importing(dir: &tempdir::Dir, name: &str, imports: &str, body: &str) -> String {
    let wat = format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (global $allocs (export "allocs") (mut i32) (i32.const 0))
  (func (export "alloc") (param $len i32) (result i32)
    (local $at i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $at))
  {body})"#
    );
    dir.write(name, &wat)
}

mod tempdir {
    /// A directory of its own under the system's temp dir, removed on drop.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("rm-wasm-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        pub fn write(&self, name: &str, text: &str) -> String {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn node(params: Value) -> Result<WasmNode, NodeError> {
    let params = validate(PARAMS, params.as_object().unwrap()).unwrap();
    WasmNode::new(&params)
}

fn audio(samples: &[f32]) -> Packet {
    let mut f = AudioFrame::new(AudioSamples::from_vec(samples.to_vec()), 48_000, 1);
    f.pts = Some(10_000_000);
    Packet::new(RuntimeData::Audio(f))
}

/// Copies the input to the output, halving every f32 sample.
const HALF: &str = r#"
  (func (export "process_with_remote") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (f32.store (i32.add (local.get $out) (local.get $i))
        (f32.mul (f32.load (i32.add (local.get $in) (local.get $i))) (f32.const 0.5)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (i32.store (local.get $out_len) (local.get $len))
    (i32.const 0))"#;

#[test]
fn audio_goes_through_the_module_with_its_format_and_timestamps() {
    let dir = tempdir::Dir::new("half");
    let path = module(&dir, "half.wat", HALF);
    let mut n = node(json!({"wasm_path": path})).unwrap();
    for _ in 0..3 {
        let mut out = Emitter::default();
        n.process(audio(&[0.5, -1.0, 0.25]), &mut out).unwrap();
        let [p] = &out.packets[..] else {
            panic!("{:?}", out.packets)
        };
        let RuntimeData::Audio(a) = &p.data else {
            panic!()
        };
        assert_eq!(&a.samples[..], &[0.25, -0.5, 0.125]);
        assert_eq!(
            (a.sample_rate, a.channels, a.pts),
            (48_000, 1, Some(10_000_000))
        );
    }
}

fn half_of(n: &mut WasmNode, samples: &[f32]) -> AudioSamples {
    let mut out = Emitter::default();
    n.process(audio(samples), &mut out).unwrap();
    let [p] = &out.packets[..] else {
        panic!("{:?}", out.packets)
    };
    let RuntimeData::Audio(a) = &p.data else {
        panic!()
    };
    a.samples.clone()
}

fn is_lent(s: &AudioSamples) -> bool {
    s.storage().as_any().is::<memory::Lent>()
}

#[test]
fn output_audio_is_read_in_place_and_its_buffer_kept_while_in_use() {
    let dir = tempdir::Dir::new("lend");
    let path = module(&dir, "half.wat", HALF);
    let mut n = node(json!({"wasm_path": path})).unwrap();
    let input = |i: usize| [i as f32, -(i as f32)];
    let expected = |i: usize| [i as f32 * 0.5, -(i as f32) * 0.5];
    // Every output held: the first 8 are read from module memory, then they are copies.
    let mut held: Vec<Option<AudioSamples>> =
        (0..12).map(|i| Some(half_of(&mut n, &input(i)))).collect();
    let lent: Vec<bool> = held.iter().flatten().map(is_lent).collect();
    assert_eq!(lent, [vec![true; 8], vec![false; 4]].concat());
    // One let go: its buffer is lent again, and no other output changes.
    held[3] = None;
    held[3] = Some(half_of(&mut n, &input(3)));
    assert!(is_lent(held[3].as_ref().unwrap()));
    // With all 8 in use the next are copies; an output let go right away leaves its buffer
    // free for the next call.
    assert!(!is_lent(&half_of(&mut n, &input(20))));
    held[5] = None;
    for i in 20..25 {
        assert!(is_lent(&half_of(&mut n, &input(i))));
    }
    held[5] = Some(half_of(&mut n, &input(5)));
    // The samples outlive the node and its module's memory.
    drop(n);
    for (i, s) in held.iter().enumerate() {
        assert_eq!(&s.as_ref().unwrap()[..], &expected(i), "output {i}");
    }
}

#[test]
fn the_host_allocates_its_buffers_once_and_again_only_to_grow_them() {
    let dir = tempdir::Dir::new("allocs");
    // Writes how many times alloc was called, as one digit.
    let path = module(
        &dir,
        "count.wat",
        r#"
      (func (export "f") (param i32) (param i32) (param $out i32) (param $out_len i32) (result i32)
        (i32.store8 (local.get $out) (i32.add (i32.const 48) (global.get $allocs)))
        (i32.store (local.get $out_len) (i32.const 1))
        (i32.const 0))"#,
    );
    let mut n = node(json!({"wasm_path": path, "function_name": "f", "input": "text"})).unwrap();
    let mut counts = Vec::new();
    for text in ["abc", "def", "ghi", "a longer one"] {
        let mut out = Emitter::default();
        n.process(Packet::new(RuntimeData::Text(text.into())), &mut out)
            .unwrap();
        let [p] = &out.packets[..] else { panic!() };
        let RuntimeData::Text(t) = &p.data else {
            panic!()
        };
        counts.push(t.clone());
    }
    // The length slot, then input and output: 3; a larger input takes two more.
    assert_eq!(counts, ["3", "3", "3", "5"]);
}

#[test]
fn return_codes_fail_retry_or_are_refused() {
    let dir = tempdir::Dir::new("codes");
    // -1, -2 with 64 bytes needed then success, -2 twice, 7.
    let failing = module(
        &dir,
        "fail.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32) (i32.const -1))"#,
    );
    let growing = module(
        &dir,
        "grow.wat",
        r#"
      (func (export "f") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
        (if (i32.lt_u (i32.load (local.get $out_len)) (i32.const 64))
          (then (i32.store (local.get $out_len) (i32.const 64)) (return (i32.const -2))))
        (i32.store8 (local.get $out) (i32.const 123))
        (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.const 125))
        (i32.store (local.get $out_len) (i32.const 2))
        (i32.const 0))"#,
    );
    let greedy = module(
        &dir,
        "greedy.wat",
        r#"
      (func (export "f") (param i32) (param i32) (param i32) (param $out_len i32) (result i32)
        (i32.store (local.get $out_len) (i32.add (i32.load (local.get $out_len)) (i32.const 1)))
        (i32.const -2))"#,
    );
    let odd = module(
        &dir,
        "odd.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32) (i32.const 7))"#,
    );
    let run = |path: &str| {
        let mut n = node(
            json!({"wasm_path": path, "function_name": "f", "input": "text", "output": "json"}),
        )?;
        let mut out = Emitter::default();
        n.process(Packet::new(RuntimeData::Text("x".into())), &mut out)?;
        Ok::<_, NodeError>(out.packets)
    };
    let err = run(&failing).unwrap_err();
    assert!(
        matches!(&err, NodeError::Failed(m) if m.contains("fail.wat") && m.contains("-1")),
        "{err}"
    );
    let got = run(&growing).unwrap();
    assert!(
        matches!(&got[..], [p] if matches!(&p.data, RuntimeData::Json(v) if *v == json!({}))),
        "{got:?}"
    );
    let err = run(&greedy).unwrap_err();
    assert!(
        matches!(&err, NodeError::Failed(m) if m.contains("larger output buffer twice")),
        "{err}"
    );
    let err = run(&odd).unwrap_err();
    assert!(
        matches!(&err, NodeError::Failed(m) if m.contains("returned 7")),
        "{err}"
    );
}

#[test]
fn traps_time_and_memory_limits_stop_the_call_not_the_process() {
    let dir = tempdir::Dir::new("limits");
    let trap = module(
        &dir,
        "trap.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32) unreachable)"#,
    );
    let oob = module(
        &dir,
        "oob.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32)
        (i32.load (i32.const 0x7ffffff0)))"#,
    );
    let spin = module(
        &dir,
        "spin.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32)
        (loop $forever (br $forever))
        (i32.const 0))"#,
    );
    let hog = module(
        &dir,
        "hog.wat",
        r#"
      (func (export "f") (param i32 i32 i32 i32) (result i32)
        (loop $more (drop (memory.grow (i32.const 16))) (br $more))
        (i32.const 0))"#,
    );
    let call = |path: &str| {
        let mut n = node(
            json!({"wasm_path": path, "function_name": "f", "input": "text",
                                 "timeout_ms": 50, "memory_limit": 4 << 20}),
        )
        .unwrap();
        let mut out = Emitter::default();
        let err = n
            .process(Packet::new(RuntimeData::Text("x".into())), &mut out)
            .unwrap_err();
        // The instance is still usable: the next call fails the same way, it does not crash.
        let again = n.process(Packet::new(RuntimeData::Text("y".into())), &mut out);
        assert!(again.is_err());
        err.to_string()
    };
    let m = call(&trap);
    assert!(m.contains("trap.wat") && m.contains("unreachable"), "{m}");
    let m = call(&oob);
    assert!(m.contains("oob.wat") && m.contains("out of bounds"), "{m}");
    let m = call(&spin);
    assert!(
        m.contains("spin.wat") && m.contains("timeout_ms (50 ms)"),
        "{m}"
    );
    let m = call(&hog);
    assert!(
        m.contains("hog.wat") && m.contains("memory_limit (4194304 bytes)"),
        "{m}"
    );
}

#[test]
fn a_module_that_does_not_fit_is_refused_at_load_naming_what_is_wrong() {
    let dir = tempdir::Dir::new("load");
    let cases = [
        (
            "noexport.wat",
            "",
            "",
            "exports no function \"process_with_remote\"",
        ),
        (
            "signature.wat",
            "",
            r#"(func (export "process_with_remote") (param i32) (result i32) (i32.const 0))"#,
            "must be (i32, i32, i32, i32) -> i32",
        ),
        (
            "import.wat",
            r#"(import "env" "open_socket" (func (param i32) (result i32)))"#,
            "",
            "open_socket",
        ),
        (
            "wasi.wat",
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
            "",
            "fd_write",
        ),
    ];
    for (name, imports, body, expected) in cases {
        let path = module_importing(&dir, name, imports, body);
        let err = node(json!({"wasm_path": path})).err().expect("refused");
        assert!(
            matches!(&err, NodeError::Config(m) if m.contains(name) && m.contains(expected)),
            "{name}: {err}"
        );
    }
    let path = dir.write("broken.wat", "(module (func");
    let err = node(json!({"wasm_path": path})).err().unwrap();
    assert!(
        matches!(&err, NodeError::Config(m) if m.contains("broken.wat") && m.contains("does not compile")),
        "{err}"
    );
    let err = node(json!({"wasm_path": "/nonexistent/x.wasm"}))
        .err()
        .unwrap();
    assert!(
        matches!(&err, NodeError::Config(m) if m.contains("/nonexistent/x.wasm")),
        "{err}"
    );
}

#[test]
fn a_service_not_in_the_whitelist_returns_minus_one_and_warns() {
    let dir = tempdir::Dir::new("whitelist");
    // Calls service "Nope" with its input and writes the return code as JSON.
    let path = module_importing(
        &dir,
        "ask.wat",
        r#"(import "env" "call_remote_service" (func $ask (param i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"
      (data (i32.const 16) "Nope")
      (func (export "f") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
        (local $rc i32)
        (i32.store (i32.const 32) (i32.const 64))
        (local.set $rc (call $ask (i32.const 16) (i32.const 4) (local.get $in) (local.get $len)
                                   (i32.const 200) (i32.const 32)))
        ;; "-1" or "0"
        (if (i32.eq (local.get $rc) (i32.const -1))
          (then (i32.store8 (local.get $out) (i32.const 45))
                (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.const 49))
                (i32.store (local.get $out_len) (i32.const 2)))
          (else (i32.store8 (local.get $out) (i32.const 48))
                (i32.store (local.get $out_len) (i32.const 1))))
        (i32.const 0))"#,
    );
    let mut n = node(
        json!({"wasm_path": path, "function_name": "f", "input": "text",
                             "output": "json", "output_capacity": 16}),
    )
    .unwrap();
    let mut out = Emitter::default();
    n.process(Packet::new(RuntimeData::Text("hello".into())), &mut out)
        .unwrap();
    assert!(
        matches!(&out.packets[..], [p] if matches!(&p.data, RuntimeData::Json(v) if *v == json!(-1)))
    );
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("\"Nope\" is not in the node's services")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn the_readme_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let wat = readme
        .split("```wat\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a wat block in README.md");
    let dir = tempdir::Dir::new("readme");
    let path = dir.write("gain.wat", wat);
    let mut n = node(json!({"wasm_path": path})).unwrap();
    let mut out = Emitter::default();
    n.process(audio(&[1.0, -0.5]), &mut out).unwrap();
    let [p] = &out.packets[..] else { panic!() };
    let RuntimeData::Audio(a) = &p.data else {
        panic!()
    };
    assert_eq!(&a.samples[..], &[0.5, -0.25]);
}

#[test]
fn a_calls_time_limit_counts_from_when_it_is_first_asked_never_earlier() {
    use std::time::{Duration, Instant};

    let mut state = host::HostState::new(services::Services::default(), payload::Kind::Audio);
    assert_eq!(state.deadline(), None, "no limit outside a call");
    let limit = Duration::from_millis(50);
    state.start_call(limit);
    let asked = Instant::now();
    let deadline = state.deadline().expect("a call has a deadline");
    assert!(deadline >= asked + limit);
    assert!(!state.deadline_passed());
    assert_eq!(state.deadline(), Some(deadline), "one clock per call");
    std::thread::sleep(Duration::from_millis(2));
    state.start_call(limit);
    assert!(
        state.deadline().expect("the next call has one too") > deadline,
        "the next call's clock starts anew"
    );
}
