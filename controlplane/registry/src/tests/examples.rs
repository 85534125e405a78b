//! The example plugins built for wasm32 (`make plugins`) pass validation.

use crate::validate_module;

/// Where `make plugins` puts the example plugins (or `MS_PLUGIN_DIR`).
fn example(name: &str) -> Vec<u8> {
    let dir = std::env::var("MS_PLUGIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-unknown-unknown/plugin").into());
    let path = format!("{dir}/ms_plugin_{name}.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}: build the example plugins first (make plugins)"))
}

#[test]
fn the_example_plugins_are_valid() {
    for name in ["pass", "filter"] {
        let info = validate_module(&example(name)).unwrap_or_else(|e| panic!("ms_plugin_{name}.wasm: {e}"));
        assert!(info.memory_min_bytes >= ms_plugin_abi::BUFFER_LEN as u64, "{name}: {info:?}");
    }
}
