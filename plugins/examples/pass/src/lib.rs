//! Passes every message unchanged: the cost of the plugin stage itself.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::{export_plugin, Error, Message, Plugin, Verdict};

/// The pass-through plugin.
pub struct Pass;

impl Plugin for Pass {
    fn init(_config: &[u8]) -> Result<Self, Error> {
        Ok(Pass)
    }

    fn on_message(&mut self, _msg: &mut Message<'_>) -> Verdict {
        Verdict::Pass
    }
}

export_plugin!(Pass);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::testing::Batch;

    #[test]
    fn everything_passes_as_it_came() {
        let mut p = Pass::init(b"").unwrap();
        let out = Batch::new().push(1, 1, 0, b"a").push(2, 3, 0, b"bc").run(&mut p);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!((out[1].stream, &out[1].payload[..]), (2, &b"bc"[..]));
    }
}
