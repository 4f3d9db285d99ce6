//! Known answers made by the real client libraries (cosmjs, Keplr's ADR-036 helper, Node's
//! crypto) in `interop/wallet/make-vectors.mjs`: our canonical strings, sign docs, addresses
//! and signatures must equal theirs byte for byte.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use data_vault_auth::{
    address_from_public_key, body_hash_field, sha256_hex, sign_doc, HmacRequest, WalletError,
    WalletRequest, WalletSigner, WalletVerifier,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Vectors {
    generator: BTreeMap<String, String>,
    prefix: String,
    legacy_chain_id: String,
    wallets: Vec<Wallet>,
    wallet_vectors: Vec<WalletVector>,
    hmac_vectors: Vec<HmacVector>,
}

#[derive(Deserialize)]
struct Wallet {
    name: String,
    mnemonic: Option<String>,
    hd_path: Option<String>,
    privkey_hex: Option<String>,
    address: String,
    pubkey_base64: String,
    pubkey_hex: String,
    uncompressed_pubkey_base64: String,
}

#[derive(Deserialize)]
struct WalletVector {
    name: String,
    wallet: String,
    method: String,
    path_and_query: String,
    timestamp_ms: i64,
    nonce: String,
    body: String,
    body_hash: String,
    signed_data: String,
    chain_id: String,
    sign_doc: String,
    sign_doc_sha256_hex: String,
    signature_base64: String,
    recoverable_signature_base64: Option<String>,
}

#[derive(Deserialize)]
struct HmacVector {
    name: String,
    secret: String,
    method: String,
    path: String,
    raw_query: String,
    principal: String,
    timestamp: String,
    nonce: String,
    body: String,
    content_sha256: String,
    canonical_string: String,
    signature_hex: String,
}

fn vectors() -> Vectors {
    let text = include_str!("vectors/wallet.json");
    serde_json::from_str(text).expect("vectors/wallet.json parses")
}

impl Vectors {
    fn wallet(&self, name: &str) -> &Wallet {
        self.wallets
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no wallet {name}"))
    }

    fn signer(&self, name: &str) -> WalletSigner {
        let wallet = self.wallet(name);
        match (&wallet.mnemonic, &wallet.privkey_hex) {
            (Some(mnemonic), None) => WalletSigner::from_mnemonic(mnemonic, &self.prefix).unwrap(),
            (None, Some(key)) => WalletSigner::from_private_key_hex(key, &self.prefix).unwrap(),
            _ => panic!("wallet {name} needs exactly one of mnemonic and privkey_hex"),
        }
    }

    fn verifier(&self) -> WalletVerifier {
        WalletVerifier::new(&self.prefix, Some(&self.legacy_chain_id)).unwrap()
    }
}

#[test]
fn the_vectors_come_from_the_pinned_javascript_libraries() {
    let v = vectors();
    assert!(v.generator["@cosmjs/amino"].starts_with("0.39."));
    assert!(v.generator["@keplr-wallet/cosmos"].starts_with("0.13."));
    assert!(v.wallet_vectors.len() >= 6);
    assert!(v.wallet_vectors.iter().any(|t| !t.chain_id.is_empty()));
    assert!(v
        .wallet_vectors
        .iter()
        .any(|t| t.path_and_query.contains('?')));
    assert!(v.wallet_vectors.iter().any(|t| !t.body.is_empty()));
    assert!(!v.hmac_vectors.is_empty());
}

#[test]
fn our_signed_data_equals_theirs_byte_for_byte() {
    for t in vectors().wallet_vectors {
        assert_eq!(
            body_hash_field(t.body.as_bytes()),
            t.body_hash,
            "{}",
            t.name
        );
        let request = WalletRequest {
            method: &t.method,
            path_and_query: &t.path_and_query,
            timestamp_ms: t.timestamp_ms,
            nonce: &t.nonce,
            body_sha256_hex: &t.body_hash,
        };
        assert_eq!(request.signed_data(), t.signed_data, "{}", t.name);
    }
}

#[test]
fn our_sign_doc_equals_keplrs_as_serialized_by_cosmjs() {
    let v = vectors();
    for t in &v.wallet_vectors {
        let signer = &v.wallet(&t.wallet).address;
        let doc = sign_doc(t.signed_data.as_bytes(), signer, &t.chain_id);
        assert_eq!(doc, t.sign_doc, "{}", t.name);
        assert_eq!(
            sha256_hex(doc.as_bytes()),
            t.sign_doc_sha256_hex,
            "{}",
            t.name
        );
    }
}

#[test]
fn our_verifier_accepts_their_signatures() {
    let v = vectors();
    let verifier = v.verifier();
    for t in &v.wallet_vectors {
        let wallet = v.wallet(&t.wallet);
        assert_eq!(
            verifier.verify(
                &wallet.address,
                &wallet.pubkey_base64,
                &t.signature_base64,
                &t.signed_data
            ),
            Ok(()),
            "{}",
            t.name
        );
    }
}

#[test]
fn their_legacy_chain_id_signatures_verify_only_when_that_chain_id_is_configured() {
    let v = vectors();
    let without = WalletVerifier::new(&v.prefix, None).unwrap();
    let legacy: Vec<_> = v
        .wallet_vectors
        .iter()
        .filter(|t| !t.chain_id.is_empty())
        .collect();
    assert!(!legacy.is_empty());
    for t in legacy {
        assert_eq!(t.chain_id, v.legacy_chain_id);
        let wallet = v.wallet(&t.wallet);
        assert_eq!(
            without.verify(
                &wallet.address,
                &wallet.pubkey_base64,
                &t.signature_base64,
                &t.signed_data
            ),
            Err(WalletError::BadSignature),
            "{}",
            t.name
        );
    }
}

#[test]
fn their_65_byte_recoverable_signatures_and_uncompressed_keys_are_refused() {
    let v = vectors();
    let verifier = v.verifier();
    let mut recoverable_seen = 0;
    for t in &v.wallet_vectors {
        let wallet = v.wallet(&t.wallet);
        assert_eq!(
            verifier.verify(
                &wallet.address,
                &wallet.uncompressed_pubkey_base64,
                &t.signature_base64,
                &t.signed_data
            ),
            Err(WalletError::MalformedPublicKey),
            "{}",
            t.name
        );
        if let Some(recoverable) = &t.recoverable_signature_base64 {
            recoverable_seen += 1;
            assert_eq!(STANDARD.decode(recoverable).unwrap().len(), 65);
            assert_eq!(
                verifier.verify(
                    &wallet.address,
                    &wallet.pubkey_base64,
                    recoverable,
                    &t.signed_data
                ),
                Err(WalletError::MalformedSignature),
                "{}",
                t.name
            );
        }
    }
    assert!(recoverable_seen > 0);
}

#[test]
fn our_addresses_equal_theirs_from_the_key_and_from_the_mnemonic() {
    let v = vectors();
    for wallet in &v.wallets {
        let key: [u8; 33] = hex::decode(&wallet.pubkey_hex).unwrap().try_into().unwrap();
        assert_eq!(STANDARD.encode(key), wallet.pubkey_base64);
        assert_eq!(
            address_from_public_key(&key, &v.prefix).unwrap(),
            wallet.address,
            "{}",
            wallet.name
        );
        let signer = v.signer(&wallet.name);
        assert_eq!(signer.address(), wallet.address, "{}", wallet.name);
        assert_eq!(
            signer.public_key_b64(),
            wallet.pubkey_base64,
            "{}",
            wallet.name
        );
        if wallet.mnemonic.is_some() {
            assert_eq!(
                wallet.hd_path.as_deref(),
                Some(data_vault_auth::COSMOS_HD_PATH)
            );
        }
    }
}

#[test]
fn our_signatures_verify_and_equal_theirs_byte_for_byte() {
    // RFC 6979 makes ECDSA deterministic, and both k256 and cosmjs (@noble/curves) sign the
    // SHA-256 prehash with the same key and normalise to low S: the bytes must agree.
    let v = vectors();
    let verifier = v.verifier();
    for t in &v.wallet_vectors {
        let signer = v.signer(&t.wallet);
        let ours = signer.sign(&t.signed_data, &t.chain_id).unwrap();
        assert_eq!(
            verifier.verify(
                signer.address(),
                &signer.public_key_b64(),
                &ours,
                &t.signed_data
            ),
            Ok(()),
            "{}",
            t.name
        );
        assert_eq!(ours, t.signature_base64, "{}", t.name);
    }
}

#[test]
fn our_hmac_canonical_strings_and_signatures_equal_nodes() {
    for t in vectors().hmac_vectors {
        assert_eq!(
            sha256_hex(t.body.as_bytes()),
            t.content_sha256,
            "{}",
            t.name
        );
        let request = HmacRequest {
            method: &t.method,
            path: &t.path,
            raw_query: &t.raw_query,
            principal: &t.principal,
            timestamp: &t.timestamp,
            nonce: &t.nonce,
            content_sha256: &t.content_sha256,
        };
        assert_eq!(request.canonical_string(), t.canonical_string, "{}", t.name);
        assert_eq!(
            request.sign(t.secret.as_bytes()),
            t.signature_hex,
            "{}",
            t.name
        );
        assert_eq!(
            request.verify(&t.signature_hex, [t.secret.as_bytes()]),
            Ok(()),
            "{}",
            t.name
        );
    }
}

#[test]
fn docs_auth_md_shows_the_generated_vectors() {
    // The document is what Go and TypeScript client authors copy from: it must not drift from
    // the JSON the tests check.
    let doc = include_str!("../../docs/auth.md");
    let v = vectors();
    let prose = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    for (library, version) in &v.generator {
        let named = format!("**{library} {version}**");
        assert!(prose.contains(&named), "{named}");
    }
    for wallet in &v.wallets {
        assert!(doc.contains(&wallet.address), "{}", wallet.name);
        assert!(doc.contains(&wallet.pubkey_base64), "{}", wallet.name);
    }
    for t in &v.wallet_vectors {
        for field in [&t.signed_data, &t.sign_doc, &t.signature_base64] {
            assert!(doc.contains(field.as_str()), "{}: {field}", t.name);
        }
    }
    for t in &v.hmac_vectors {
        for field in [&t.canonical_string, &t.signature_hex] {
            assert!(doc.contains(field.as_str()), "hmac/{}: {field}", t.name);
        }
    }
}
