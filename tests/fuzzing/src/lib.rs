//! Properties shared by the cargo-fuzz targets in `fuzz/` and their proptest twins in
//! `tests/`, so stable `cargo test` checks what the fuzzers check, with the same code.
//! Each property panics when it fails; fuzzers and proptests both report panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod determinism;
mod frame_ops;
mod session;

pub use decode::{
    decode_hostile_replay, decode_hostile_snapshot, decode_hostile_wire, edited_replay,
    edited_snapshot, edited_wire, reassemble_hostile_chunks, valid_replay, valid_snapshot,
};
pub use determinism::{DeterminismPlan, PathEvent, check_determinism, straight_run};
pub use frame_ops::{FrameOp, check_frame_ops};
pub use session::{Script, check_client_script, check_message_decoding, check_server_script};
