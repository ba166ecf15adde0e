//! Stream frame header, protocol message and saved reconnect-data decoding on arbitrary
//! bytes: a clean error or a value that round-trips. See
//! `tickstep_fuzzing::check_message_decoding`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tickstep_fuzzing::check_message_decoding(data);
});
