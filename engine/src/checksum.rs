//! `checksum`: blake3 over a frame's canonical bytes.

use bytemuck::Pod;

use crate::{Checksum, Frame};

/// The checksum of `frame`: blake3 over [`Frame::write_image`]'s bytes. Equal game states
/// have equal checksums on every peer; peers compare them to detect a desync, and a
/// snapshot's payload hash equals it.
pub fn checksum<G: Pod>(frame: &Frame<G>) -> Checksum {
    let mut hasher = blake3::Hasher::new();
    frame.write_image(|bytes| {
        hasher.update(bytes);
    });
    hasher.finalize().into()
}
