//! Tests: small modules written in WAT, plugin folders in temporary
//! directories, catalogs built by hand for resolution.

mod discover;
mod examples;
mod manifest;
mod module;
mod resolve;
mod signing;

/// The ABI's exports with the right signatures.
const ABI_EXPORTS: &str = r#"
  (func (export "ms_abi_version") (result i32) i32.const 1)
  (func (export "ms_buffer") (result i32) i32.const 1024)
  (func (export "ms_init") (param i32) (result i32) i32.const 0)
  (func (export "ms_start") (result i32) i32.const 0)
  (func (export "ms_on_batch") (param i32) (result i32) i32.const 0)
  (func (export "ms_on_config") (param i32) (result i32) i32.const 0)
  (func (export "ms_drain") (result i32) i32.const 0)
  (func (export "ms_snapshot_state") (result i32) i32.const 0)
  (func (export "ms_restore_state") (param i32) (result i32) i32.const 0)
  (func (export "ms_stop") (result i32) i32.const 0)
"#;

/// The four host imports with the right signatures.
const ABI_IMPORTS: &str = r#"
  (import "ms" "emit" (func (param i64 i32 i32 i32) (result i32)))
  (import "ms" "log" (func (param i32 i32 i32)))
  (import "ms" "counter_add" (func (param i32 i64)))
  (import "ms" "now" (func (result i64)))
"#;

/// The text of a valid plugin module: every import, one exported memory
/// of six pages, every ABI export.
fn valid_wat() -> String {
    format!("(module {ABI_IMPORTS} (memory (export \"memory\") 6) {ABI_EXPORTS})")
}

/// `wat` as a binary module.
fn wasm(wat: &str) -> Vec<u8> {
    match wat::parse_str(wat) {
        Ok(bytes) => bytes,
        Err(e) => panic!("test module does not assemble: {e}\n{wat}"),
    }
}

/// A good manifest for `name` `version`.
fn manifest_text(name: &str, version: &str) -> String {
    format!(
        "name: {name}\nversion: {version}\nabi: \"^1\"\ndescription: Keeps messages whose payload holds given bytes.\n\
         counters: [kept, dropped]\nlimits: {{ memory_bytes: 1048576, deadline_ms: 5, fuel: 1000000 }}\n"
    )
}
