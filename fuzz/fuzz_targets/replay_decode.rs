//! Replay file reading on hostile input: arbitrary bytes, and valid replays with
//! arbitrary edits and cuts, then verify and seek on whatever parses. See
//! `tickstep_fuzzing`; the proptest twin in `tests/replay.rs` runs the same code.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tickstep_fuzzing::{decode_hostile_replay, edited_replay};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Edited { ticks: u8, edits: Vec<(u16, u8)>, cut: Option<u16> },
}

fuzz_target!(|input: Input| match input {
    Input::Raw(bytes) => decode_hostile_replay(&bytes),
    Input::Edited { ticks, edits, cut } => decode_hostile_replay(&edited_replay(ticks, &edits, cut)),
});
