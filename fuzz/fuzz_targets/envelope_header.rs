//! Fuzzes `envelope::check`, the structural test every upload passes before it is stored.
//!
//! Besides "no panic, bounded time", an accepted input must have the shape of a binary age v1
//! file: the version line first, a header that ends in a `---` MAC line, and after it at least
//! the 16-byte payload nonce and one 16-byte tag. The armored form is always refused.

#![no_main]

use data_vault::envelope::check;
use libfuzzer_sys::fuzz_target;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// `--- ` and the 43 base64 characters of the header MAC.
const MAC_LINE_LEN: usize = 4 + 43;
/// Payload nonce and the smallest STREAM chunk (an empty one: its tag alone).
const MIN_PAYLOAD: usize = 16 + 16;

fuzz_target!(|data: &[u8]| {
    let verdict = check(data);
    if data.starts_with(ARMOR_BEGIN) {
        assert!(verdict.is_err(), "armored input accepted");
    }
    if verdict.is_ok() {
        assert!(
            data.starts_with(VERSION_LINE),
            "accepted without the v1 line"
        );
        let mac = data
            .windows(5)
            .position(|w| w == b"\n--- ")
            .expect("accepted without a header MAC line");
        let payload_start = mac + 1 + MAC_LINE_LEN + 1;
        assert!(
            data.len() >= payload_start + MIN_PAYLOAD,
            "accepted with {} bytes, fewer than a header and an empty payload",
            data.len()
        );
        assert_eq!(
            data.get(payload_start - 1),
            Some(&b'\n'),
            "MAC line not 43 characters"
        );
    }
    // The check is a pure function of the bytes.
    assert_eq!(check(data), verdict);
});
