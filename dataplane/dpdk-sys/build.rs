//! Generates bindings to the system's libdpdk and compiles C wrappers for
//! its `static inline` functions (rx/tx burst, mbuf alloc/free, ...), which
//! have no symbol to link against.

use std::env;
use std::path::PathBuf;

const DPDK_MIN_VERSION: &str = "22.11";

fn main() {
    let lib = pkg_config::Config::new().atleast_version(DPDK_MIN_VERSION).probe("libdpdk").unwrap_or_else(|e| {
        panic!(
            "libdpdk >= {DPDK_MIN_VERSION} not found through pkg-config ({e}).\n\
                 Fix: run `make setup` (or `apt-get install dpdk-dev libdpdk-dev pkg-config`)."
        )
    });
    let cflags = dpdk_cflags();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let static_wrappers = out.join("static_wrappers");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_(eal|lcore|socket|get|rdtsc|strerror|pktmbuf|mempool|eth|ring|mbuf|vdev|delay|exit).*")
        .allowlist_function("ms_.*")
        .allowlist_var("(MS_)?RTE_.*")
        .allowlist_type("rte_.*")
        .opaque_type("rte_arp_hdr|rte_arp_ipv4|rte_gtp_.*|rte_l2tpv2_.*")
        .blocklist_type("rte_arp_hdr|rte_arp_ipv4")
        .derive_default(true)
        .layout_tests(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_wrappers)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on wrapper.h; is libclang-dev installed? (`make setup`)");
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    let mut build = cc::Build::new();
    for flag in &cflags {
        build.flag(flag);
    }
    build
        .include(env::current_dir().expect("cwd"))
        .file(static_wrappers.with_extension("c"))
        .file("shim.c")
        .warnings(false)
        .compile("ms_dpdk_shims");

    for path in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    // Drivers are shared objects EAL loads at run time, so pkg-config does
    // not list them; rte_vdev_init lives in the vdev bus driver. The
    // library in the PMD directory is the same file, so it loads once.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    // rte_eth_from_rings (the benchmark's crossed port pair) is in the ring PMD.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
}

/// The exact compiler flags libdpdk asks for: its inline functions need
/// `-include rte_config.h` and a `-march` with SSE4.2.
fn dpdk_cflags() -> Vec<String> {
    let output = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("run pkg-config --cflags libdpdk");
    assert!(output.status.success(), "pkg-config --cflags libdpdk failed");
    let text = String::from_utf8(output.stdout).expect("pkg-config output is UTF-8");
    let mut flags = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        if word == "-include" {
            if let Some(file) = words.next() {
                flags.push(format!("-include{file}"));
            }
        } else {
            flags.push(word.to_string());
        }
    }
    flags
}
