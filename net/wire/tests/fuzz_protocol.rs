//! The frame decoders (incremental and whole-buffer) against arbitrary bytes, and against valid frames with arbitrary damage: every
//! outcome is a frame, "need more bytes", or a typed error; never a panic, never an allocation
//! larger than the frame limit. Longer run: `PROPTEST_CASES=200000 cargo test --release -p bursar-wire --test fuzz_protocol`.

use bursar_wire::protocol::{FrameDecoder, Request, HEADER_SIZE};
use proptest::prelude::*;

fn drive(bytes: &[u8], chunk: usize) {
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some((header, body))) => {
                    let _ = Request::decode(&header, &body);
                }
                Ok(None) => break,
                Err(_) => return, // the stream is closed on the first error
            }
        }
    }
    let _ = decoder.finish();
    // The server's whole-buffer path: the same bytes as one stream read to its end.
    if let Ok((header, body)) = bursar_wire::protocol::decode_frame(bytes) {
        let _ = Request::decode_reusing(&header, body, Vec::with_capacity(4));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var_os("PROPTEST_CASES").map_or(1024, |_| ProptestConfig::default().cases), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..64) {
        drive(&bytes, chunk);
    }

    #[test]
    fn damaged_valid_frames_never_panic(ids in proptest::collection::vec(any::<u128>(), 0..8), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), chunk in 1usize..64) {
        let mut bytes = Vec::new();
        Request::LookupAccounts(ids).encode(7, &mut bytes);
        for (at, value) in flips {
            let at = at % bytes.len().max(HEADER_SIZE);
            if at < bytes.len() {
                bytes[at] ^= value;
            }
        }
        drive(&bytes, chunk);
    }
}
