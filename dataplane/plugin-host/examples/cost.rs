//! The plugin stage's cost per message: an example plugin over batches of
//! 1, 32 and 256 messages of 64 bytes, with and without fuel metering.
//!
//!   make plugins && cargo run --release -p ms-plugin-host --example cost [-- NAME [CONFIG]]

use ms_plugin_host::{engine, load, precompile, sha256, EngineSettings, Instance, Limits, Ticker};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "pass".into());
    let config = args.next().unwrap_or_default().replace("\\n", "\n");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-unknown-unknown/plugin");
    let path = format!("{dir}/ms_plugin_{name}.wasm");
    let wasm = std::fs::read(&path).map_err(|e| format!("{path}: {e}: run make plugins first"))?;
    for fuel in [false, true] {
        let engine = engine(&EngineSettings { fuel, ..EngineSettings::default() })?;
        let _ticker = Ticker::start(&engine, Duration::from_millis(1))?;
        let artifact = precompile(&engine, &wasm)?;
        let module = load(&engine, &artifact, &sha256(&artifact))?;
        let limits = Limits { fuel_per_call: fuel.then_some(10_000_000), ..Limits::default() };
        let mut p = Instance::start(&engine, &module, limits, config.as_bytes(), 0)?;
        let payload = [7u8; 64];
        let mut sink = 0u64;
        for n in [1usize, 32, 256] {
            let messages = 4_000_000usize;
            let t = Instant::now();
            for round in 0..messages / n {
                let mut w = p.batch();
                for i in 0..n {
                    w.push((round * n + i) as u64, 1, 0, &payload);
                }
                p.run(0)?;
                // What a caller reads of each decision.
                for d in p.decisions().ok_or("no decisions")? {
                    sink = sink.wrapping_add(d.stream ^ d.payload.len() as u64 ^ d.verdict as u64);
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / messages as f64;
            println!("{name}: batch {n:3}, fuel {fuel:5}: {ns:6.1} ns per message (filling the batch and reading every decision included)");
        }
        std::hint::black_box(sink);
    }
    Ok(())
}
