//! Fuzzes the parsers of untrusted authentication headers in `data-vault-auth`: the decimal
//! timestamp, the nonce shape, the replay window, the HMAC signature header, and the wallet
//! headers (bech32 address, base64 public key, base64 signature) through
//! `WalletVerifier::verify`.
//!
//! Each case checks a property, not only the absence of a panic: the parsers accept exactly
//! the documented shapes, what is accepted is canonical (one spelling per value), and a
//! signature made by the real signer verifies while a tampered one does not.

#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use data_vault_auth::{
    address_from_public_key, body_hash_field, check_window, is_valid_nonce, timestamp, HmacError,
    HmacRequest, WalletError, WalletRequest, WalletSigner, WalletVerifier, WindowError,
    DEFAULT_PREFIX, MAX_AGE_SECS, MAX_AHEAD_SECS,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A fixed signing key, so that the fuzzer reaches the ECDSA path with real signatures.
const KEY_HEX: &str = "abb097dee43379f877dd1c4538375ef42ba954eef1d839f4fd5391f76a299fea";
const CHAIN_ID: &str = "virtengine-1";

#[derive(Arbitrary, Debug)]
struct Hmac<'a> {
    method: &'a str,
    path: &'a str,
    raw_query: &'a str,
    principal: &'a str,
    timestamp: &'a str,
    nonce: &'a str,
    content_sha256: &'a str,
    signature: &'a str,
    secret: &'a [u8],
    other_secret: &'a [u8],
}

#[derive(Arbitrary, Debug)]
struct WalletHeaders<'a> {
    prefix: &'a str,
    chain_id: Option<&'a str>,
    address: &'a str,
    public_key_b64: &'a str,
    signature_b64: &'a str,
    signed_data: &'a str,
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    None,
    /// Sign with a chain id the verifier was not configured with.
    ForeignChain,
    /// Verify other signed data than was signed.
    OtherData(u8),
    /// Flip one character of the base64 signature.
    SignatureChar(u8),
    /// Uppercase the address (valid bech32, but not the canonical principal).
    UppercaseAddress,
}

#[derive(Arbitrary, Debug)]
struct WalletSigned<'a> {
    method: &'a str,
    path_and_query: &'a str,
    timestamp_ms: i64,
    nonce: &'a str,
    body: &'a [u8],
    use_chain_id: bool,
    tamper: Tamper,
}

#[derive(Arbitrary, Debug)]
enum Case<'a> {
    Timestamp(&'a str),
    Nonce(&'a str),
    Window { request_ms: i64, now_ms: i64 },
    Hmac(Hmac<'a>),
    Wallet(WalletHeaders<'a>),
    WalletSigned(WalletSigned<'a>),
    Address { key: [u8; 33], prefix: &'a str },
}

fn signer() -> &'static WalletSigner {
    static SIGNER: OnceLock<WalletSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        WalletSigner::from_private_key_hex(KEY_HEX, DEFAULT_PREFIX).expect("fixed key is valid")
    })
}

fn timestamp_case(text: &str) {
    let parsed = timestamp::parse_decimal(text);
    let well_formed = (1..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    assert_eq!(parsed.is_some(), well_formed, "{text:?}");
    if let Some(value) = parsed {
        assert!(value >= 0);
        // One value, one meaning: the canonical spelling parses to the same value.
        assert_eq!(timestamp::parse_decimal(&value.to_string()), Some(value));
        assert_eq!(
            text.trim_start_matches('0').parse::<i64>().unwrap_or(0),
            value
        );
    }
}

fn nonce_case(nonce: &str) {
    let shape = (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    assert_eq!(is_valid_nonce(nonce), shape, "{nonce:?}");
}

fn window_case(request_ms: i64, now_ms: i64) {
    let age = i128::from(now_ms) - i128::from(request_ms);
    let expected = if age > i128::from(MAX_AGE_SECS) * 1000 {
        Err(WindowError::TooOld)
    } else if age < -i128::from(MAX_AHEAD_SECS) * 1000 {
        Err(WindowError::TooFarAhead)
    } else {
        Ok(())
    };
    assert_eq!(check_window(request_ms, now_ms), expected);
}

fn hmac_case(input: &Hmac<'_>) {
    let request = HmacRequest {
        method: input.method,
        path: input.path,
        raw_query: input.raw_query,
        principal: input.principal,
        timestamp: input.timestamp,
        nonce: input.nonce,
        content_sha256: input.content_sha256,
    };
    let canonical = request.canonical_string();
    let fields = [
        input.method,
        input.path,
        input.raw_query,
        input.principal,
        input.timestamp,
        input.nonce,
        input.content_sha256,
    ];
    assert_eq!(
        canonical.len(),
        fields.iter().map(|f| f.len()).sum::<usize>() + 6
    );

    // The header parser: exactly 64 hex digits, or a malformed signature.
    let is_hex64 =
        input.signature.len() == 64 && input.signature.bytes().all(|b| b.is_ascii_hexdigit());
    let verdict = request.verify(input.signature, [input.secret, input.other_secret]);
    if !is_hex64 {
        assert_eq!(verdict, Err(HmacError::MalformedSignature));
    } else if verdict.is_ok() {
        // Only the real MAC (in either case of hex) can verify.
        let genuine = [input.secret, input.other_secret]
            .iter()
            .any(|s| request.sign(s).eq_ignore_ascii_case(input.signature));
        assert!(genuine, "a forged signature verified");
    }
    // No secret, no verification.
    assert!(request.verify(input.signature, []).is_err());

    // The real signature verifies with either rotation secret, and only with a secret that
    // made it.
    let signature = request.sign(input.secret);
    assert_eq!(signature.len(), 64);
    assert!(request
        .verify(&signature, [input.other_secret, input.secret])
        .is_ok());
    if request.sign(input.other_secret) != signature {
        assert_eq!(
            request.verify(&signature, [input.other_secret]),
            Err(HmacError::BadSignature)
        );
    }
}

/// What each wallet error says about how far the headers parsed.
fn wallet_case(input: &WalletHeaders<'_>) {
    let Ok(verifier) = WalletVerifier::new(input.prefix, input.chain_id) else {
        return;
    };
    let prefix = verifier.prefix();
    assert!(
        (1..=51).contains(&prefix.len()),
        "prefix {prefix:?} accepted"
    );
    assert!(prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let verdict = verifier.verify(
        input.address,
        input.public_key_b64,
        input.signature_b64,
        input.signed_data,
    );
    // How far the headers parsed: a valid set (the corpus holds one, a documented test
    // vector) parsed all the way.
    let error = verdict.err();
    let address_parsed = !matches!(
        error,
        Some(WalletError::MalformedAddress | WalletError::WrongPrefix)
    );
    if address_parsed {
        // The address that passed is the canonical one: lowercase, this prefix, 20 bytes.
        assert_eq!(input.address, input.address.to_ascii_lowercase());
        assert!(input.address.starts_with(&format!("{prefix}1")));
        assert_eq!(input.address.len(), prefix.len() + 1 + 32 + 6);
    }
    let key_parsed = address_parsed && error != Some(WalletError::MalformedPublicKey);
    if key_parsed {
        let key = STANDARD
            .decode(input.public_key_b64)
            .expect("accepted key is base64");
        assert_eq!(key.len(), 33);
        assert_eq!(
            STANDARD.encode(&key),
            input.public_key_b64,
            "non-canonical base64"
        );
        assert!(matches!(key[0], 2 | 3));
    }
    let signature_parsed = key_parsed
        && !matches!(
            error,
            Some(WalletError::AddressMismatch | WalletError::MalformedSignature)
        );
    if signature_parsed {
        let signature = STANDARD
            .decode(input.signature_b64)
            .expect("accepted signature is base64");
        assert_eq!(signature.len(), 64);
        assert_eq!(STANDARD.encode(&signature), input.signature_b64);
    }
    if error.is_none() {
        // A valid signature covers the signed data: other data does not verify with it.
        let other = format!("{}.", input.signed_data);
        assert_eq!(
            verifier.verify(
                input.address,
                input.public_key_b64,
                input.signature_b64,
                &other
            ),
            Err(WalletError::BadSignature)
        );
    }
}

fn wallet_signed_case(input: &WalletSigned<'_>) {
    let signer = signer();
    let body_hash = body_hash_field(input.body);
    if input.body.is_empty() {
        assert!(body_hash.is_empty());
    } else {
        assert_eq!(body_hash.len(), 64);
        assert!(body_hash
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    let data = WalletRequest {
        method: input.method,
        path_and_query: input.path_and_query,
        timestamp_ms: input.timestamp_ms,
        nonce: input.nonce,
        body_sha256_hex: &body_hash,
    }
    .signed_data();
    let verifier = WalletVerifier::new(DEFAULT_PREFIX, Some(CHAIN_ID)).expect("valid config");
    let chain_id = if input.use_chain_id { CHAIN_ID } else { "" };
    let mut address = signer.address().to_owned();
    let mut checked = data.clone();
    let mut chain = chain_id;
    let mut signature = signer.sign(&data, chain).expect("signing works");
    let expected = match &input.tamper {
        Tamper::None => Ok(()),
        Tamper::ForeignChain => {
            chain = "another-chain-1";
            signature = signer.sign(&data, chain).expect("signing works");
            Err(WalletError::BadSignature)
        }
        Tamper::OtherData(extra) => {
            checked.push(char::from(*extra));
            Err(WalletError::BadSignature)
        }
        Tamper::SignatureChar(at) => {
            let mut bytes = signature.into_bytes();
            let index = usize::from(*at) % 86; // the 86 characters before the `==` padding
            bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
            signature = String::from_utf8(bytes).expect("base64 is ASCII");
            // A changed signature may also fail to parse or be high-S; it must never verify.
            Err(WalletError::BadSignature)
        }
        Tamper::UppercaseAddress => {
            address = address.to_ascii_uppercase();
            Err(WalletError::MalformedAddress)
        }
    };
    let verdict = verifier.verify(&address, &signer.public_key_b64(), &signature, &checked);
    match (&input.tamper, expected) {
        (Tamper::SignatureChar(_), _) => assert!(verdict.is_err(), "tampered signature verified"),
        (_, expected) => assert_eq!(verdict, expected, "{input:?}"),
    }
}

fn address_case(key: &[u8; 33], prefix: &str) {
    let Ok(address) = address_from_public_key(key, prefix) else {
        return;
    };
    let Ok(verifier) = WalletVerifier::new(prefix, None) else {
        panic!("address made under prefix {prefix:?} that the verifier refuses");
    };
    // The address we print is one the verifier parses back to the same key.
    let verdict = verifier.verify(&address, &STANDARD.encode(key), "", "");
    assert!(
        !matches!(
            verdict,
            Err(WalletError::MalformedAddress
                | WalletError::WrongPrefix
                | WalletError::AddressMismatch)
        ),
        "{address} from {key:?}: {verdict:?}"
    );
}

fuzz_target!(|case: Case<'_>| match case {
    Case::Timestamp(text) => timestamp_case(text),
    Case::Nonce(nonce) => nonce_case(nonce),
    Case::Window { request_ms, now_ms } => window_case(request_ms, now_ms),
    Case::Hmac(input) => hmac_case(&input),
    Case::Wallet(input) => wallet_case(&input),
    Case::WalletSigned(input) => wallet_signed_case(&input),
    Case::Address { key, prefix } => address_case(&key, prefix),
});
