//! The wallet scheme for portal users (DESIGN §6): a Cosmos wallet signs a compact JSON
//! description of the request the ADR-036 way (Keplr's `signArbitrary`), and the bech32 address
//! of its secp256k1 key is the principal. `docs/auth.md` gives the bytes and test vectors.

use crate::sha256_hex;
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{Signature, SigningKey};
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The bech32 prefix of wallet addresses unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "virtengine";

/// The Cosmos HD path (coin type 118) that Keplr and cosmjs derive the first account at.
pub const COSMOS_HD_PATH: &str = "m/44'/118'/0'/0/0";

/// A compressed SEC1 public key: a tag byte (2 or 3) and the 32-byte x coordinate.
const COMPRESSED_KEY_LEN: usize = 33;
/// Twenty address bytes are exactly 32 five-bit groups, so a canonical address has 32 data
/// characters and no padding bits that could spell the same bytes differently.
const ADDRESS_DATA_CHARS: usize = 32;
/// The longest prefix that keeps an address within bech32's 90 characters (1 separator,
/// 32 data and 6 checksum characters).
const MAX_PREFIX_LEN: usize = 90 - 1 - ADDRESS_DATA_CHARS - 6;
/// The longest chain id accepted in configuration.
const MAX_CHAIN_ID_LEN: usize = 64;
/// Bytes decoded from a base64 header at most; real keys and signatures are 33 and 64 bytes,
/// and anything up to here decodes so that its wrong length, not a buffer, is what is reported.
const MAX_DECODED_LEN: usize = 96;

/// Why a wallet signature was refused. Each reason is counted apart in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("address is not a canonical lowercase bech32 address of 20 bytes")]
    MalformedAddress,
    #[error("address has another prefix than the configured one")]
    WrongPrefix,
    #[error("public key is not base64 of a valid 33-byte compressed secp256k1 key")]
    MalformedPublicKey,
    #[error("address is not the address of the public key")]
    AddressMismatch,
    #[error("signature is not base64 of a valid 64-byte r||s signature")]
    MalformedSignature,
    #[error("signature is not in low-S form")]
    HighS,
    #[error("signature does not verify")]
    BadSignature,
}

impl WalletError {
    /// A stable label for metrics and logs; it never changes once released.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MalformedAddress => "malformed_address",
            Self::WrongPrefix => "wrong_prefix",
            Self::MalformedPublicKey => "malformed_public_key",
            Self::AddressMismatch => "address_mismatch",
            Self::MalformedSignature => "malformed_signature",
            Self::HighS => "high_s",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// Why a verifier or signer could not be set up, or a signature could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalletSetupError {
    #[error("prefix must be 1 to {MAX_PREFIX_LEN} lowercase ASCII letters and digits")]
    InvalidPrefix,
    #[error("chain id must be 1 to {MAX_CHAIN_ID_LEN} ASCII letters, digits, '.', '_' or '-'")]
    InvalidChainId,
    #[error("private key is not 64 hexadecimal characters of a valid secp256k1 scalar")]
    MalformedPrivateKey,
    #[error("mnemonic is not a valid English BIP-39 mnemonic")]
    InvalidMnemonic,
    #[error("key derivation along {COSMOS_HD_PATH} failed")]
    Derivation,
    #[error("signing failed")]
    Signing,
}

/// The signed fields of one wallet request, exactly as they travel on the wire.
#[derive(Debug, Clone, Copy)]
pub struct WalletRequest<'a> {
    pub method: &'a str,
    /// The path as sent, plus `?` and the raw query when there is one; percent-encoding
    /// untouched.
    pub path_and_query: &'a str,
    /// Unix milliseconds, the value of `X-VE-Timestamp`.
    pub timestamp_ms: i64,
    pub nonce: &'a str,
    /// Lowercase hex SHA-256 of the body, or empty for an empty body: see [`body_hash_field`].
    pub body_sha256_hex: &'a str,
}

impl WalletRequest<'_> {
    /// The UTF-8 text the wallet signs. Plain formatting, no JSON escaping, so that any client
    /// can build it with string formatting: clients percent-encode their queries.
    pub fn signed_data(&self) -> String {
        format!(
            r#"{{"method":"{}","path":"{}","timestamp":{},"nonce":"{}","body_hash":"{}"}}"#,
            self.method, self.path_and_query, self.timestamp_ms, self.nonce, self.body_sha256_hex
        )
    }
}

/// The `body_hash` field for `body`: lowercase hex SHA-256, or empty when there is no body.
pub fn body_hash_field(body: &[u8]) -> String {
    if body.is_empty() {
        String::new()
    } else {
        sha256_hex(body)
    }
}

/// Writes the ADR-036 amino sign doc for `data`, byte for byte what cosmjs' `serializeSignDoc`
/// makes of Keplr's `makeADR36AminoSignDoc(signer, data)` (keys sorted, no spaces). The signer
/// and chain id are written unescaped: the verifier passes only addresses it has parsed as
/// bech32 and chain ids checked by [`WalletVerifier::new`], in which cosmjs escapes nothing.
fn write_sign_doc(
    data: &[u8],
    signer: &str,
    chain_id: &str,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    write!(
        out,
        r#"{{"account_number":"0","chain_id":"{chain_id}","fee":{{"amount":[],"gas":"0"}},"memo":"","msgs":[{{"type":"sign/MsgSignData","value":{{"data":"{data}","signer":"{signer}"}}}}],"sequence":"0"}}"#,
        data = Base64Display::new(data, &STANDARD),
    )
}

/// The ADR-036 sign doc for `data` signed by `signer` with `chain_id` (empty in ADR-036).
/// `signer` and `chain_id` are written as given, which matches cosmjs for bech32 addresses and
/// chain ids of letters, digits, `.`, `_` and `-`; cosmjs would escape `"`, `\`, control
/// characters, `<`, `>` and `&`.
pub fn sign_doc(data: &[u8], signer: &str, chain_id: &str) -> String {
    let capacity = 200 + data.len().div_ceil(3) * 4 + signer.len() + chain_id.len();
    let mut doc = String::with_capacity(capacity);
    // Writing to a String cannot fail.
    let _ = write_sign_doc(data, signer, chain_id, &mut doc);
    doc
}

/// Feeds formatted text straight into SHA-256, so verification hashes the sign doc without
/// building it in memory.
struct HashWriter(Sha256);

impl fmt::Write for HashWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.update(text.as_bytes());
        Ok(())
    }
}

/// SHA-256 of [`sign_doc`]: the prehash that the wallet's ECDSA signature covers.
fn sign_doc_digest(data: &[u8], signer: &str, chain_id: &str) -> [u8; 32] {
    let mut hasher = HashWriter(Sha256::new());
    // Writing to a hasher cannot fail.
    let _ = write_sign_doc(data, signer, chain_id, &mut hasher);
    hasher.0.finalize().into()
}

/// RIPEMD160(SHA256(key)): the 20 address bytes of a Cosmos secp256k1 key.
fn address_bytes(compressed: &[u8; COMPRESSED_KEY_LEN]) -> [u8; 20] {
    Ripemd160::digest(Sha256::digest(compressed)).into()
}

fn parse_prefix(prefix: &str) -> Result<Hrp, WalletSetupError> {
    let valid = (1..=MAX_PREFIX_LEN).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        return Err(WalletSetupError::InvalidPrefix);
    }
    Hrp::parse(prefix).map_err(|_| WalletSetupError::InvalidPrefix)
}

/// The bech32 address of a compressed secp256k1 public key under `prefix`. The key bytes are
/// hashed as given; [`WalletVerifier::verify`] is what checks that a key is a curve point.
pub fn address_from_public_key(
    compressed: &[u8; COMPRESSED_KEY_LEN],
    prefix: &str,
) -> Result<String, WalletSetupError> {
    let hrp = parse_prefix(prefix)?;
    bech32::encode_lower::<Bech32>(hrp, &address_bytes(compressed))
        .map_err(|_| WalletSetupError::InvalidPrefix)
}

/// Decodes standard padded base64 that must hold exactly `N` bytes.
fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() > MAX_DECODED_LEN / 3 * 4 {
        return None;
    }
    let mut buffer = [0u8; MAX_DECODED_LEN];
    let len = STANDARD.decode_slice(text, &mut buffer).ok()?;
    buffer.get(..len)?.try_into().ok()
}

/// Verifies wallet signatures for one configured prefix and, optionally, one chain id that
/// older portal clients put in their sign docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletVerifier {
    prefix: String,
    extra_chain_id: Option<String>,
}

impl Default for WalletVerifier {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            extra_chain_id: None,
        }
    }
}

impl WalletVerifier {
    /// A verifier for addresses with `prefix`. Sign docs always may carry the empty chain id of
    /// ADR-036; `extra_chain_id`, unless `None` or empty, is accepted too.
    ///
    /// The chain id is restricted to letters, digits, `.`, `_` and `-` (every Cosmos chain id in
    /// use), so that it reads the same unescaped here and escaped by cosmjs.
    pub fn new(prefix: &str, extra_chain_id: Option<&str>) -> Result<Self, WalletSetupError> {
        parse_prefix(prefix)?;
        let extra_chain_id = extra_chain_id.filter(|id| !id.is_empty());
        if let Some(id) = extra_chain_id {
            let valid = id.len() <= MAX_CHAIN_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                return Err(WalletSetupError::InvalidChainId);
            }
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            extra_chain_id: extra_chain_id.map(str::to_owned),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn extra_chain_id(&self) -> Option<&str> {
        self.extra_chain_id.as_deref()
    }

    /// Checks that `address` is a canonical address with the configured prefix, as a request's
    /// `X-VE-Address` must be (for tools that name wallet principals, such as blocking one).
    pub fn check_address(&self, address: &str) -> Result<(), WalletError> {
        self.address_payload(address).map(|_| ())
    }

    /// The 20 bytes of `address`, which must be canonical: lowercase (bech32 also allows
    /// uppercase, but one key must have one principal string) and exactly 20 bytes long.
    fn address_payload(&self, address: &str) -> Result<[u8; 20], WalletError> {
        if address.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(WalletError::MalformedAddress);
        }
        let parsed =
            CheckedHrpstring::new::<Bech32>(address).map_err(|_| WalletError::MalformedAddress)?;
        if parsed.hrp().as_bytes() != self.prefix.as_bytes() {
            return Err(WalletError::WrongPrefix);
        }
        if parsed.data_part_ascii_no_checksum().len() != ADDRESS_DATA_CHARS {
            return Err(WalletError::MalformedAddress);
        }
        let mut payload = [0u8; 20];
        for (slot, byte) in payload.iter_mut().zip(parsed.byte_iter()) {
            *slot = byte;
        }
        Ok(payload)
    }

    /// Verifies the headers of one request: `X-VE-Address`, `X-VE-PubKey` and
    /// `X-VE-Signature` over `signed_data` (see [`WalletRequest::signed_data`]). Cheap checks
    /// run first; the ECDSA verification runs once, or twice when the signature does not verify
    /// with the empty chain id and another one is configured.
    pub fn verify(
        &self,
        address: &str,
        public_key_b64: &str,
        signature_b64: &str,
        signed_data: &str,
    ) -> Result<(), WalletError> {
        let payload = self.address_payload(address)?;

        let compressed: [u8; COMPRESSED_KEY_LEN] =
            decode_exact(public_key_b64).ok_or(WalletError::MalformedPublicKey)?;
        // The tag is checked here because `sec1` also reads 33 bytes tagged 5 as a "compact"
        // point; parsing then checks that the key is on the curve.
        if !matches!(compressed[0], 0x02 | 0x03) {
            return Err(WalletError::MalformedPublicKey);
        }
        let key = secp256k1::PublicKey::from_byte_array_compressed(compressed)
            .map_err(|_| WalletError::MalformedPublicKey)?;
        if address_bytes(&compressed) != payload {
            return Err(WalletError::AddressMismatch);
        }

        // Exactly 64 bytes: a 65-byte recoverable signature is refused, not trimmed.
        let bytes: [u8; 64] = decode_exact(signature_b64).ok_or(WalletError::MalformedSignature)?;
        let signature =
            Signature::from_slice(&bytes).map_err(|_| WalletError::MalformedSignature)?;
        // Cosmos SDK and cosmjs only make low-S signatures; a high-S one is a malleated copy.
        if signature.normalize_s() != signature {
            return Err(WalletError::HighS);
        }

        // The encoding checks above are k256's (r and s in range and non-zero, low S); the
        // equation is libsecp256k1's, in under half the instructions (docs/performance.md).
        let signature = secp256k1::ecdsa::Signature::from_compact(&bytes)
            .map_err(|_| WalletError::MalformedSignature)?;
        let verifies = |chain_id: &str| {
            let digest = sign_doc_digest(signed_data.as_bytes(), address, chain_id);
            let message = secp256k1::Message::from_digest(digest);
            secp256k1::ecdsa::verify(&signature, message, &key).is_ok()
        };
        if verifies("") || self.extra_chain_id.as_deref().is_some_and(verifies) {
            Ok(())
        } else {
            Err(WalletError::BadSignature)
        }
    }
}

/// The client side of the scheme, for our CLI and tests: a secp256k1 key and its address.
/// The key is zeroized when the signer is dropped (`k256` does that for [`SigningKey`]).
#[derive(Clone)]
pub struct WalletSigner {
    key: SigningKey,
    public_key: [u8; COMPRESSED_KEY_LEN],
    address: String,
}

impl fmt::Debug for WalletSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl WalletSigner {
    /// A signer from a raw 32-byte private key in hex, as cosmjs' `Secp256k1Wallet.fromKey`.
    pub fn from_private_key_hex(
        private_key_hex: &str,
        prefix: &str,
    ) -> Result<Self, WalletSetupError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(private_key_hex.trim(), bytes.as_mut_slice())
            .map_err(|_| WalletSetupError::MalformedPrivateKey)?;
        let key = SigningKey::from_slice(bytes.as_slice())
            .map_err(|_| WalletSetupError::MalformedPrivateKey)?;
        Self::from_signing_key(key, prefix)
    }

    /// A signer for the first account of an English BIP-39 mnemonic without passphrase, at
    /// [`COSMOS_HD_PATH`], as Keplr and cosmjs' `Secp256k1HdWallet.fromMnemonic` derive it.
    pub fn from_mnemonic(phrase: &str, prefix: &str) -> Result<Self, WalletSetupError> {
        // English words are ASCII, so the phrase is already in NFKD form and needs no copy.
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, phrase)
            .map_err(|_| WalletSetupError::InvalidMnemonic)?;
        let seed = Zeroizing::new(mnemonic.to_seed_normalized(""));
        let path: bip32::DerivationPath = COSMOS_HD_PATH
            .parse()
            .map_err(|_| WalletSetupError::Derivation)?;
        let extended = bip32::XPrv::derive_from_path(seed.as_slice(), &path)
            .map_err(|_| WalletSetupError::Derivation)?;
        Self::from_signing_key(extended.private_key().clone(), prefix)
    }

    fn from_signing_key(key: SigningKey, prefix: &str) -> Result<Self, WalletSetupError> {
        let point = key.verifying_key().to_sec1_point(true);
        let public_key: [u8; COMPRESSED_KEY_LEN] = point
            .as_bytes()
            .try_into()
            .map_err(|_| WalletSetupError::MalformedPrivateKey)?;
        let address = address_from_public_key(&public_key, prefix)?;
        Ok(Self {
            key,
            public_key,
            address,
        })
    }

    /// The bech32 address, the value of `X-VE-Address`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The compressed public key.
    pub fn public_key(&self) -> &[u8; COMPRESSED_KEY_LEN] {
        &self.public_key
    }

    /// The compressed public key in base64, the value of `X-VE-PubKey`.
    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.public_key)
    }

    /// Signs `signed_data` inside an ADR-036 sign doc with `chain_id` (empty unless talking to
    /// a server that expects an old client): the base64 64-byte low-S value of
    /// `X-VE-Signature`. RFC 6979 makes it deterministic.
    pub fn sign(&self, signed_data: &str, chain_id: &str) -> Result<String, WalletSetupError> {
        let digest = sign_doc_digest(signed_data.as_bytes(), &self.address, chain_id);
        let signature: Signature = self
            .key
            .sign_prehash(&digest)
            .map_err(|_| WalletSetupError::Signing)?;
        // k256 already signs low-S; normalizing again keeps the contract explicit.
        Ok(STANDARD.encode(signature.normalize_s().to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::VerifyingKey;
    use proptest::prelude::*;

    const KEY_HEX: &str = "abb097dee43379f877dd1c4538375ef42ba954eef1d839f4fd5391f76a299fea";
    const OTHER_KEY_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    const CHAIN_ID: &str = "virtengine-1";
    /// The order of secp256k1's group, big-endian.
    const ORDER_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

    fn signer() -> WalletSigner {
        WalletSigner::from_private_key_hex(KEY_HEX, DEFAULT_PREFIX).unwrap()
    }

    fn request() -> WalletRequest<'static> {
        WalletRequest {
            method: "GET",
            path_and_query: "/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000?reason=x",
            timestamp_ms: 1_700_000_000_000,
            nonce: "00112233445566778899aabbccddeeff",
            body_sha256_hex: "",
        }
    }

    /// A signature and its verification inputs for `request()` by `signer()`.
    fn signed(chain_id: &str) -> (WalletSigner, String, String) {
        let signer = signer();
        let data = request().signed_data();
        let signature = signer.sign(&data, chain_id).unwrap();
        (signer, data, signature)
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn signed_data_is_compact_json_in_the_documented_key_order() {
        assert_eq!(
            request().signed_data(),
            r#"{"method":"GET","path":"/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000?reason=x","timestamp":1700000000000,"nonce":"00112233445566778899aabbccddeeff","body_hash":""}"#
        );
    }

    #[test]
    fn body_hash_field_is_empty_for_an_empty_body_and_hex_sha256_otherwise() {
        assert_eq!(body_hash_field(b""), "");
        assert_eq!(
            body_hash_field(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sign_doc_is_the_sorted_compact_amino_json_of_adr_036() {
        assert_eq!(
            sign_doc(b"hi?", "virtengine1abc", ""),
            r#"{"account_number":"0","chain_id":"","fee":{"amount":[],"gas":"0"},"memo":"","msgs":[{"type":"sign/MsgSignData","value":{"data":"aGk/","signer":"virtengine1abc"}}],"sequence":"0"}"#
        );
        assert!(sign_doc(b"x", "s", CHAIN_ID).contains(r#""chain_id":"virtengine-1""#));
    }

    #[test]
    fn the_streamed_digest_is_the_hash_of_the_sign_doc() {
        for len in [0, 1, 2, 3, 47, 48, 49, 1000, 5000] {
            let data = vec![b'a'; len];
            let expected: [u8; 32] =
                Sha256::digest(sign_doc(&data, "signer", "c").as_bytes()).into();
            assert_eq!(sign_doc_digest(&data, "signer", "c"), expected, "{len}");
        }
    }

    #[test]
    fn address_is_bech32_of_ripemd160_of_sha256_of_the_compressed_key() {
        let signer = signer();
        let expected = bech32::encode_lower::<Bech32>(
            Hrp::parse("virtengine").unwrap(),
            &Ripemd160::digest(Sha256::digest(signer.public_key())),
        )
        .unwrap();
        assert_eq!(signer.address(), expected);
        assert_eq!(
            address_from_public_key(signer.public_key(), "virtengine").unwrap(),
            expected
        );
    }

    #[test]
    fn signer_signatures_are_64_bytes_low_s_and_verify() {
        let (signer, data, signature) = signed("");
        let bytes = STANDARD.decode(&signature).unwrap();
        assert_eq!(bytes.len(), 64);
        let parsed = Signature::from_slice(&bytes).unwrap();
        assert_eq!(parsed.normalize_s(), parsed);
        let verifier = WalletVerifier::default();
        assert_eq!(
            verifier.verify(
                signer.address(),
                &signer.public_key_b64(),
                &signature,
                &data
            ),
            Ok(())
        );
    }

    #[test]
    fn an_address_with_another_prefix_is_refused_as_wrong_prefix() {
        let (signer, data, signature) = signed("");
        let cosmos = address_from_public_key(signer.public_key(), "cosmos").unwrap();
        assert_eq!(
            WalletVerifier::default().verify(&cosmos, &signer.public_key_b64(), &signature, &data),
            Err(WalletError::WrongPrefix)
        );
    }

    #[test]
    fn an_address_of_another_key_is_refused_as_a_mismatch() {
        let (signer, data, signature) = signed("");
        let other = WalletSigner::from_private_key_hex(OTHER_KEY_HEX, DEFAULT_PREFIX).unwrap();
        assert_eq!(
            WalletVerifier::default().verify(
                other.address(),
                &signer.public_key_b64(),
                &signature,
                &data
            ),
            Err(WalletError::AddressMismatch)
        );
    }

    #[test]
    fn non_canonical_or_corrupt_addresses_are_malformed() {
        let (signer, data, signature) = signed("");
        let address = signer.address().to_owned();
        let mut bad_checksum = address.clone();
        let last = bad_checksum.pop().unwrap();
        bad_checksum.push(if last == 'q' { 'p' } else { 'q' });
        let short =
            bech32::encode_lower::<Bech32>(Hrp::parse("virtengine").unwrap(), &[1; 19]).unwrap();
        let bech32m =
            bech32::encode_lower::<bech32::Bech32m>(Hrp::parse("virtengine").unwrap(), &[1; 20])
                .unwrap();
        for bad in [
            address.to_uppercase(),
            bad_checksum,
            short,
            bech32m,
            String::new(),
            "virtengine1".to_owned(),
        ] {
            assert_eq!(
                WalletVerifier::default().verify(&bad, &signer.public_key_b64(), &signature, &data),
                Err(WalletError::MalformedAddress),
                "{bad}"
            );
        }
    }

    #[test]
    fn uncompressed_and_malformed_public_keys_are_refused() {
        let (signer, data, signature) = signed("");
        let key = VerifyingKey::from_sec1_bytes(signer.public_key()).unwrap();
        let uncompressed = key.to_sec1_point(false);
        assert_eq!(uncompressed.as_bytes().len(), 65);
        // Tag 5 is what the `sec1` crate calls a compact point: it would parse.
        let mut compact_tag = *signer.public_key();
        compact_tag[0] = 0x05;
        let mut uncompressed_tag = *signer.public_key();
        uncompressed_tag[0] = 0x04;
        // x = 5 is not the x coordinate of any point (5³ + 7 = 132 is not a square mod p).
        let mut off_curve = [0u8; 33];
        off_curve[0] = 0x02;
        off_curve[32] = 5;
        let mut not_base64 = signer.public_key_b64();
        not_base64.replace_range(0..1, "*");
        for bad in [
            b64(uncompressed.as_bytes()),
            b64(&compact_tag),
            b64(&uncompressed_tag),
            b64(&off_curve),
            b64(&signer.public_key()[..32]),
            not_base64,
            String::new(),
        ] {
            assert_eq!(
                WalletVerifier::default().verify(signer.address(), &bad, &signature, &data),
                Err(WalletError::MalformedPublicKey),
                "{bad}"
            );
        }
    }

    /// n − s, computed byte by byte so the test does not lean on the library it checks.
    fn order_minus(s: &[u8]) -> [u8; 32] {
        let order = hex::decode(ORDER_HEX).unwrap();
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut digit = i16::from(order[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(digit < 0);
            if digit < 0 {
                digit += 256;
            }
            out[i] = u8::try_from(digit).unwrap();
        }
        assert_eq!(borrow, 0);
        out
    }

    #[test]
    fn a_high_s_twin_of_a_valid_signature_is_refused_as_high_s() {
        let (signer, data, signature) = signed("");
        let bytes = STANDARD.decode(&signature).unwrap();
        let mut twin = bytes.clone();
        twin[32..].copy_from_slice(&order_minus(&bytes[32..]));
        assert_ne!(twin, bytes);
        assert_eq!(
            WalletVerifier::default().verify(
                signer.address(),
                &signer.public_key_b64(),
                &b64(&twin),
                &data
            ),
            Err(WalletError::HighS)
        );
    }

    #[test]
    fn signatures_that_are_not_exactly_64_valid_bytes_are_malformed() {
        let (signer, data, signature) = signed("");
        let bytes = STANDARD.decode(&signature).unwrap();
        let mut recoverable = bytes.clone();
        recoverable.push(1);
        let mut zero_r = bytes.clone();
        zero_r[..32].fill(0);
        let mut r_at_order = bytes.clone();
        r_at_order[..32].copy_from_slice(&hex::decode(ORDER_HEX).unwrap());
        let unpadded = signature.trim_end_matches('=').to_owned();
        for bad in [
            b64(&recoverable),
            b64(&bytes[..63]),
            b64(&zero_r),
            b64(&r_at_order),
            unpadded,
            hex::encode(&bytes),
            String::new(),
        ] {
            assert_eq!(
                WalletVerifier::default().verify(
                    signer.address(),
                    &signer.public_key_b64(),
                    &bad,
                    &data
                ),
                Err(WalletError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_sign_doc_with_an_unconfigured_chain_id_is_refused() {
        let (signer, data, signature) = signed("some-other-chain");
        let key = signer.public_key_b64();
        for verifier in [
            WalletVerifier::default(),
            WalletVerifier::new(DEFAULT_PREFIX, Some(CHAIN_ID)).unwrap(),
        ] {
            assert_eq!(
                verifier.verify(signer.address(), &key, &signature, &data),
                Err(WalletError::BadSignature)
            );
        }
    }

    #[test]
    fn a_sign_doc_with_the_configured_chain_id_is_accepted_and_only_when_configured() {
        let (signer, data, signature) = signed(CHAIN_ID);
        let key = signer.public_key_b64();
        let configured = WalletVerifier::new(DEFAULT_PREFIX, Some(CHAIN_ID)).unwrap();
        assert_eq!(
            configured.verify(signer.address(), &key, &signature, &data),
            Ok(())
        );
        assert_eq!(
            WalletVerifier::default().verify(signer.address(), &key, &signature, &data),
            Err(WalletError::BadSignature)
        );
        // The configured chain id is an addition: ADR-036's empty one still verifies.
        let (_, data, plain) = signed("");
        assert_eq!(
            configured.verify(signer.address(), &key, &plain, &data),
            Ok(())
        );
    }

    #[test]
    fn another_keys_signature_does_not_verify() {
        let (signer, data, _) = signed("");
        let other = WalletSigner::from_private_key_hex(OTHER_KEY_HEX, DEFAULT_PREFIX).unwrap();
        let foreign = other.sign(&data, "").unwrap();
        assert_eq!(
            WalletVerifier::default().verify(
                signer.address(),
                &signer.public_key_b64(),
                &foreign,
                &data
            ),
            Err(WalletError::BadSignature)
        );
    }

    #[test]
    fn a_custom_prefix_is_honoured_by_signer_and_verifier() {
        let signer = WalletSigner::from_private_key_hex(KEY_HEX, "cosmos").unwrap();
        assert!(signer.address().starts_with("cosmos1"));
        let data = request().signed_data();
        let signature = signer.sign(&data, "").unwrap();
        let key = signer.public_key_b64();
        let verifier = WalletVerifier::new("cosmos", None).unwrap();
        assert_eq!(
            verifier.verify(signer.address(), &key, &signature, &data),
            Ok(())
        );
        assert_eq!(
            WalletVerifier::default().verify(signer.address(), &key, &signature, &data),
            Err(WalletError::WrongPrefix)
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        for prefix in ["", "Virtengine", "virt engine", "v-e", &"a".repeat(52)] {
            assert_eq!(
                WalletVerifier::new(prefix, None),
                Err(WalletSetupError::InvalidPrefix),
                "{prefix}"
            );
        }
        assert!(WalletVerifier::new(&"a".repeat(51), None).is_ok());
        for chain_id in ["a\"b", "a b", "a<b", "é", &"c".repeat(65)] {
            assert_eq!(
                WalletVerifier::new(DEFAULT_PREFIX, Some(chain_id)),
                Err(WalletSetupError::InvalidChainId),
                "{chain_id}"
            );
        }
        let no_extra = WalletVerifier::new(DEFAULT_PREFIX, Some("")).unwrap();
        assert_eq!(no_extra.extra_chain_id(), None);
        assert_eq!(no_extra, WalletVerifier::default());
    }

    #[test]
    fn bad_private_keys_and_mnemonics_are_refused() {
        let zero = "0".repeat(64);
        let order = ORDER_HEX.to_owned();
        for bad in [zero.as_str(), order.as_str(), "abcd", "zz"] {
            assert_eq!(
                WalletSigner::from_private_key_hex(bad, DEFAULT_PREFIX).unwrap_err(),
                WalletSetupError::MalformedPrivateKey
            );
        }
        let bad_checksum = "abandon ".repeat(12);
        for bad in [bad_checksum.trim(), "not a mnemonic", ""] {
            assert_eq!(
                WalletSigner::from_mnemonic(bad, DEFAULT_PREFIX).unwrap_err(),
                WalletSetupError::InvalidMnemonic
            );
        }
    }

    #[test]
    fn every_rejection_has_its_own_stable_reason() {
        let all = [
            WalletError::MalformedAddress,
            WalletError::WrongPrefix,
            WalletError::MalformedPublicKey,
            WalletError::AddressMismatch,
            WalletError::MalformedSignature,
            WalletError::HighS,
            WalletError::BadSignature,
        ];
        let reasons: std::collections::BTreeSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(reasons
            .iter()
            .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn the_signer_does_not_print_its_key() {
        let printed = format!("{:?}", signer());
        assert!(printed.contains("virtengine1"));
        assert!(!printed.to_lowercase().contains(KEY_HEX));
    }

    /// Replaces one byte of `text` (at `index` modulo its length) by another byte of `alphabet`,
    /// or appends one when `text` is empty.
    fn change_one_byte(text: &str, index: usize, pick: usize, alphabet: &[u8]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        if bytes.is_empty() {
            bytes.push(alphabet[pick % alphabet.len()]);
        } else {
            let at = index % bytes.len();
            let candidates: Vec<u8> = alphabet
                .iter()
                .copied()
                .filter(|&b| b != bytes[at])
                .collect();
            bytes[at] = candidates[pick % candidates.len()];
        }
        String::from_utf8(bytes).unwrap()
    }

    const PRINTABLE: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%/?=&";
    const DIGITS: &[u8] = b"0123456789";
    const HEX: &[u8] = b"0123456789abcdef";

    proptest! {
        #[test]
        fn signer_and_verifier_agree_and_any_changed_byte_fails(
            method in "(GET|POST|PUT|DELETE|PATCH)",
            path in "/[a-zA-Z0-9/_.~%-]{0,60}",
            query in proptest::option::of("[a-zA-Z0-9=&%._~-]{1,60}"),
            with_body in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 1..64),
            timestamp_ms in 0i64..10_000_000_000_000,
            nonce in "[0-9a-f]{16,64}",
            field in 0usize..6,
            index in any::<usize>(),
            pick in any::<usize>(),
        ) {
            let signer = signer();
            let verifier = WalletVerifier::default();
            let body_hash = if with_body { body_hash_field(&body) } else { String::new() };
            let query_part = query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
            let path_and_query = format!("{path}{query_part}");
            let original = WalletRequest {
                method: &method,
                path_and_query: &path_and_query,
                timestamp_ms,
                nonce: &nonce,
                body_sha256_hex: &body_hash,
            };
            let data = original.signed_data();
            let signature = signer.sign(&data, "").unwrap();
            let key = signer.public_key_b64();
            prop_assert_eq!(verifier.verify(signer.address(), &key, &signature, &data), Ok(()));

            let mut method2 = method.clone();
            let mut path2 = path.clone();
            let mut query2 = query_part.clone();
            let mut hash2 = body_hash.clone();
            let mut timestamp2 = timestamp_ms;
            let mut nonce2 = nonce.clone();
            match field {
                0 => method2 = change_one_byte(&method, index, pick, PRINTABLE),
                1 => path2 = change_one_byte(&path, index, pick, PRINTABLE),
                2 => query2 = change_one_byte(&query_part, index, pick, PRINTABLE),
                3 => hash2 = change_one_byte(&body_hash, index, pick, HEX),
                4 => {
                    timestamp2 = change_one_byte(&timestamp_ms.to_string(), index, pick, DIGITS)
                        .parse()
                        .unwrap();
                }
                _ => nonce2 = change_one_byte(&nonce, index, pick, HEX),
            }
            let path_and_query2 = format!("{path2}{query2}");
            let changed = WalletRequest {
                method: &method2,
                path_and_query: &path_and_query2,
                timestamp_ms: timestamp2,
                nonce: &nonce2,
                body_sha256_hex: &hash2,
            };
            let changed_data = changed.signed_data();
            prop_assert_ne!(&changed_data, &data);
            prop_assert_eq!(
                verifier.verify(signer.address(), &key, &signature, &changed_data),
                Err(WalletError::BadSignature)
            );
        }
    }
}
