//! Arbitrary message sequences from arbitrary peers, with arbitrary time steps, into
//! the room server (first byte even) or a client (odd): no panic, and slot ownership,
//! tick monotonicity, bounded connections and the wire limit hold after every step.
//! See `tickstep_fuzzing::check_server_script`; the proptest twins are in
//! `tests/fuzz_twins.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickstep_fuzzing::{check_client_script, check_server_script};

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((side, script)) if side % 2 == 0 => check_server_script(script),
        Some((_, script)) => check_client_script(script),
        None => {}
    }
});
