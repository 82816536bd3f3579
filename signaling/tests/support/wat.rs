//! Modules for WasmNode in the text format, shared by the tests and the benchmark.

/// A module with `imports`, one page of exported memory, a bump allocator as `alloc`, and the
/// functions and data of `body`.
pub fn module(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $at))
  {body})"#
    )
}

/// The import of `call_remote_service` as `$ask`.
pub const ASK: &str = r#"(import "env" "call_remote_service" (func $ask (param i32 i32 i32 i32 i32 i32) (result i32)))"#;
