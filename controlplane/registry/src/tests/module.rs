use super::{abi_exports, valid_wat, wasm};
use crate::module::{EXPORTS, IMPORTS};
use crate::{validate_module, ModuleError, MODULE_BYTES_MAX};
use ms_plugin_abi::{export, import};

fn refused(wat: &str) -> ModuleError {
    match validate_module(&wasm(wat)) {
        Ok(info) => panic!("accepted: {info:?}\n{wat}"),
        Err(e) => e,
    }
}

/// The valid module with `from` replaced by `to` in its text.
fn variant(from: &str, to: &str) -> String {
    let text = valid_wat();
    assert!(text.contains(from), "{from:?} is not in the test module");
    text.replace(from, to)
}

#[test]
fn the_signature_tables_cover_the_abi_exactly() {
    fn names(t: &[(&'static str, crate::AbiSignature)]) -> Vec<&'static str> {
        t.iter().map(|(n, _)| *n).collect()
    }
    assert_eq!(names(EXPORTS), export::FUNCTIONS);
    assert_eq!(names(IMPORTS), import::FUNCTIONS);
}

#[test]
fn a_valid_module_passes_and_is_described() {
    let info = validate_module(&wasm(&valid_wat())).unwrap();
    assert_eq!(info.memory_min_bytes, 6 * 65536);
    assert_eq!(info.memory_max_bytes, None);
    assert_eq!(info.imports, ["counter_add", "emit", "log", "now"]);
    let bare = format!(
        "(module (memory (export \"memory\") 1 8) {} (global (export \"g\") i32 (i32.const 0)))",
        abi_exports()
    );
    let info = validate_module(&wasm(&bare)).expect("no imports and extra exports are fine");
    assert_eq!((info.memory_max_bytes, info.imports.len()), (Some(8 * 65536), 0));
}

#[test]
fn a_missing_export_is_named_with_its_signature() {
    let e = refused(&variant("(func (export \"ms_drain\") (result i32) i32.const 0)", ""));
    let want =
        "the module does not export ms_drain () -> i32, which plugin ABI 1 requires: use ms_plugin_sdk::export_plugin!";
    assert_eq!(e.to_string(), want);
}

#[test]
fn a_wrong_signature_is_refused_naming_both() {
    let e = refused(&variant(
        "(func (export \"ms_init\") (param i32) (result i32)",
        "(func (export \"ms_init\") (result i32)",
    ));
    assert_eq!(e.to_string(), "export ms_init has the signature () -> i32; plugin ABI 1 defines it as (i32) -> i32: rebuild against ms-plugin-abi 1");
    let e = refused(&variant(
        "(import \"ms\" \"now\" (func $now (result i64)))",
        "(import \"ms\" \"now\" (func $now (result i32)))",
    ));
    assert!(
        e.to_string().starts_with("import ms.now has the signature () -> i32; plugin ABI 1 defines it as () -> i64"),
        "{e}"
    );
    let e = refused(&variant(
        "(import \"ms\" \"log\" (func $log (param i32 i32 i32)))",
        "(import \"ms\" \"log\" (func $log (param i32 i32 i32) (result i32)))",
    ));
    assert!(e.to_string().contains("defines it as (i32, i32, i32) -> ()"), "{e}");
    let e = refused(&variant(
        "(func (export \"ms_stop\") (result i32) i32.const 0)",
        "(global (export \"ms_stop\") i32 (i32.const 0))",
    ));
    assert!(
        e.to_string().starts_with("the module exports ms_stop as a global; plugin ABI 1 needs a function () -> i32"),
        "{e}"
    );
}

#[test]
fn a_disallowed_import_is_named() {
    let wasi = "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))";
    let e = refused(&variant("(import \"ms\" \"now\"", &format!("{wasi} (import \"ms\" \"now\"")));
    assert!(
        matches!(&e, ModuleError::ImportNotAllowed { module, name, .. } if module == "wasi_snapshot_preview1" && name == "fd_write"),
        "{e}"
    );
    assert!(e.to_string().contains("\"wasi_snapshot_preview1\".\"fd_write\""), "{e}");
    let e = refused(&variant("(import \"ms\" \"now\"", "(import \"ms\" \"sleep\" (func)) (import \"ms\" \"now\""));
    assert!(e.to_string().contains("function \"ms\".\"sleep\""), "{e}");
    let e = refused(&variant("(import \"ms\" \"now\"", "(import \"ms\" \"flag\" (global i32)) (import \"ms\" \"now\""));
    assert!(e.to_string().contains("global \"ms\".\"flag\""), "{e}");
    let e = refused(&variant(
        "(memory (export \"memory\") 6)",
        "(import \"env\" \"memory\" (memory 6)) (export \"memory\" (memory 0))",
    ));
    assert!(e.to_string().contains("memory \"env\".\"memory\""), "{e}");
}

#[test]
fn memories_must_be_one_exported_as_memory() {
    let e = refused(&variant("(memory (export \"memory\") 6)", "(memory (export \"memory\") 6) (memory 1)"));
    assert_eq!(e, ModuleError::MemoryCount { count: 2 });
    assert!(e.to_string().starts_with("the module has 2 memories; a plugin has exactly one"), "{e}");
    assert_eq!(refused(&variant("(memory (export \"memory\") 6)", "")), ModuleError::MemoryCount { count: 0 });
    let e = refused(&variant("(memory (export \"memory\") 6)", "(memory (export \"mem\") 6)"));
    assert_eq!(e, ModuleError::MemoryNotExported);
    let e = refused(&variant(
        "(memory (export \"memory\") 6)",
        "(memory 6) (global (export \"memory\") i32 (i32.const 0))",
    ));
    assert!(e.to_string().contains("exports memory as a global"), "{e}");
}

#[test]
fn a_start_function_is_refused() {
    let e = refused(&variant(
        "(memory (export \"memory\") 6)",
        "(memory (export \"memory\") 6) (func $boot) (start $boot)",
    ));
    assert!(matches!(e, ModuleError::StartFunction { .. }), "{e}");
    assert!(e.to_string().contains("move that work into ms_init"), "{e}");
}

#[test]
fn threads_memory64_and_other_features_are_refused() {
    let e = refused(&variant("(memory (export \"memory\") 6)", "(memory (export \"memory\") 6 6 shared)"));
    assert_eq!(e, ModuleError::SharedMemory);
    let e = refused(&variant("(memory (export \"memory\") 6)", "(memory (export \"memory\") i64 6)"));
    assert_eq!(e, ModuleError::Memory64);
    let atomics = "(func (export \"ms_start\") (result i32) i32.const 0 i32.atomic.load)";
    let e = refused(&variant("(func (export \"ms_start\") (result i32) i32.const 0)", atomics));
    assert!(matches!(e, ModuleError::Invalid { .. }), "atomics: {e}");
    let simd = "(func (export \"ms_start\") (result i32) v128.const i64x2 0 0 i32x4.extract_lane 0)";
    let e = refused(&variant("(func (export \"ms_start\") (result i32) i32.const 0)", simd));
    assert!(matches!(e, ModuleError::Invalid { .. } | ModuleError::Malformed { .. }), "simd: {e}");
    let tail = "(func (export \"ms_start\") (result i32) return_call 0)";
    let e = refused(&variant("(func (export \"ms_start\") (result i32) i32.const 0)", tail));
    assert!(e.to_string().contains("not valid for a plugin"), "tail call: {e}");
    let e = refused(&variant(
        "(memory (export \"memory\") 6)",
        "(memory (export \"memory\") 6) (global externref (ref.null extern))",
    ));
    assert!(matches!(e, ModuleError::Invalid { .. }), "externref: {e}");
    let e = refused(&variant("(memory (export \"memory\") 6)", "(memory (export \"memory\") 6) (tag $t)"));
    assert!(matches!(e, ModuleError::Invalid { .. }), "exceptions: {e}");
    let e = refused(&variant(
        "(memory (export \"memory\") 6)",
        "(memory (export \"memory\") 6) (table 1 funcref) (table 1 funcref)",
    ));
    assert_eq!(e, ModuleError::Tables { count: 2 });
}

#[test]
fn what_rustc_emits_by_default_is_allowed() {
    // bulk-memory, sign-ext, saturating conversions, multi-value, a funcref
    // table and mutable globals: rustc's default wasm32 output.
    let body = r#"
      (table 1 funcref) (elem (i32.const 0) 0)
      (global $sp (mut i32) (i32.const 1024))
      (func (export "ms_start") (result i32)
        (memory.fill (i32.const 0) (i32.const 0) (i32.const 8))
        (drop (i32.extend8_s (i32.const 1)))
        (drop (i32.trunc_sat_f32_s (f32.const 1)))
        (global.set $sp (i32.const 2048))
        (call_indirect (result i32 i32) (i32.const 0)) drop)"#;
    let text = variant("(func (export \"ms_start\") (result i32) i32.const 0)", body);
    let text = text.replace(
        "(func (export \"ms_abi_version\") (result i32) i32.const 1)",
        "(func (export \"ms_abi_version\") (result i32) i32.const 1) (func (result i32 i32) i32.const 1 i32.const 2)",
    );
    validate_module(&wasm(&text)).unwrap();
}

#[test]
fn oversize_garbage_and_components_are_refused() {
    let mut big = wasm(&valid_wat());
    big.resize(MODULE_BYTES_MAX + 1, 0);
    assert_eq!(validate_module(&big), Err(ModuleError::TooLarge { len: MODULE_BYTES_MAX + 1, max: MODULE_BYTES_MAX }));
    assert!(matches!(validate_module(b"\x7fELF\x02\x01\x01"), Err(ModuleError::Malformed { .. })));
    let mut cut = wasm(&valid_wat());
    cut.truncate(cut.len() - 3);
    assert!(matches!(validate_module(&cut), Err(ModuleError::Malformed { .. })));
    let component = wasm("(component)");
    assert_eq!(validate_module(&component), Err(ModuleError::Component));
}
