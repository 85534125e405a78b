//! Fuzzes the whole-datagram parser with the property the unit tests use
//! (`ms_wire::fuzz_check`): no panic, and entries exactly as counted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ms_wire::fuzz_check(data);
});
