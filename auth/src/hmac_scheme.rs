//! The HMAC scheme for services (DESIGN §6): HMAC-SHA256, keyed with the client secret's ASCII
//! bytes, over `METHOD\nPATH\nRAW_QUERY\nPRINCIPAL\nTIMESTAMP\nNONCE\nCONTENT_SHA256`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signed fields of one request, exactly as they travel on the wire.
#[derive(Debug, Clone, Copy)]
pub struct HmacRequest<'a> {
    pub method: &'a str,
    /// The path as sent, percent-encoding untouched.
    pub path: &'a str,
    /// The query as sent, without `?`; empty when there is none.
    pub raw_query: &'a str,
    pub principal: &'a str,
    /// Unix seconds, as the decimal text of the `X-VE-Timestamp` header.
    pub timestamp: &'a str,
    pub nonce: &'a str,
    /// Hex SHA-256 of the body, as the text of the `X-VE-Content-SHA256` header.
    pub content_sha256: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HmacError {
    #[error("signature is not 64 lower-case hexadecimal characters")]
    MalformedSignature,
    #[error("signature does not verify")]
    BadSignature,
}

impl HmacRequest<'_> {
    /// The exact bytes that are signed.
    pub fn canonical_string(&self) -> String {
        [
            self.method,
            self.path,
            self.raw_query,
            self.principal,
            self.timestamp,
            self.nonce,
            self.content_sha256,
        ]
        .join("\n")
    }

    fn mac(&self, secret: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the
        // function total without a panic path.
        let mut mac = HmacSha256::new_from_slice(secret)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        mac.update(self.canonical_string().as_bytes());
        mac
    }

    /// Signs the request: the lowercase hex value of `X-VE-Signature`.
    pub fn sign(&self, secret: &[u8]) -> String {
        hex::encode(self.mac(secret).finalize().into_bytes())
    }

    /// Whether `signature` is this request's MAC under `secret`; the comparison is
    /// constant-time.
    pub fn matches(&self, signature: &[u8; 32], secret: &[u8]) -> bool {
        self.mac(secret).verify_slice(signature).is_ok()
    }

    /// Verifies `signature_hex` against each secret in turn (a client holds two during
    /// rotation). Every comparison is constant-time.
    pub fn verify<'s>(
        &self,
        signature_hex: &str,
        secrets: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<(), HmacError> {
        let signature = parse_signature(signature_hex)?;
        let mut verified = false;
        for secret in secrets {
            // No early exit: the time taken does not tell which secret matched.
            verified |= self.matches(&signature, secret);
        }
        if verified {
            Ok(())
        } else {
            Err(HmacError::BadSignature)
        }
    }
}

/// Decodes an `X-VE-Signature` value. Only the documented lower-case hex is accepted, so one
/// signature has one spelling.
pub fn parse_signature(signature_hex: &str) -> Result<[u8; 32], HmacError> {
    crate::parse_lower_hex_32(signature_hex).ok_or(HmacError::MalformedSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request<'a>(query: &'a str, body_hash: &'a str) -> HmacRequest<'a> {
        HmacRequest {
            method: "GET",
            path: "/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000",
            raw_query: query,
            principal: "provider-daemon-7",
            timestamp: "1700000000",
            nonce: "00112233445566778899aabbccddeeff",
            content_sha256: body_hash,
        }
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn canonical_string_joins_the_seven_fields_with_newlines() {
        assert_eq!(
            request("reason=x", EMPTY).canonical_string(),
            "GET\n/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000\nreason=x\n\
             provider-daemon-7\n1700000000\n00112233445566778899aabbccddeeff\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn known_vector_matches() {
        // Independently computed with: printf '%s' "$canonical" | openssl dgst -sha256 -hmac secret
        let sig = request("", EMPTY).sign(b"secret");
        assert_eq!(
            sig,
            "9cec0856efcb419701c65a539ff8cf54eee1b745f5b72da2fb46f00bc2d54ba9"
        );
        assert!(request("", EMPTY)
            .verify(&sig, [b"secret".as_slice()])
            .is_ok());
    }

    #[test]
    fn either_rotation_secret_verifies() {
        let sig = request("", EMPTY).sign(b"new");
        let secrets = [b"old".as_slice(), b"new".as_slice()];
        assert!(request("", EMPTY).verify(&sig, secrets).is_ok());
        assert_eq!(
            request("", EMPTY).verify(&sig, [b"old".as_slice()]),
            Err(HmacError::BadSignature)
        );
    }

    #[test]
    fn malformed_signatures_are_told_apart() {
        let r = request("", EMPTY);
        assert_eq!(
            r.verify("zz", [b"k".as_slice()]),
            Err(HmacError::MalformedSignature)
        );
        assert_eq!(
            r.verify(&"0".repeat(64), [b"k".as_slice()]),
            Err(HmacError::BadSignature)
        );
    }

    #[test]
    fn upper_case_signatures_are_malformed_even_when_they_would_verify() {
        let r = request("", EMPTY);
        let sig = r.sign(b"k");
        assert!(sig.bytes().any(|b| b.is_ascii_alphabetic()), "{sig}");
        assert!(r.verify(&sig, [b"k".as_slice()]).is_ok());
        assert_eq!(
            r.verify(&sig.to_uppercase(), [b"k".as_slice()]),
            Err(HmacError::MalformedSignature)
        );
        let mut mixed = sig.clone();
        let at = mixed.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
        mixed.replace_range(at..=at, &mixed[at..=at].to_uppercase());
        assert_eq!(
            r.verify(&mixed, [b"k".as_slice()]),
            Err(HmacError::MalformedSignature)
        );
        assert_eq!(parse_signature(&sig).map(hex::encode), Ok(sig));
    }

    proptest! {
        #[test]
        fn any_changed_field_fails_verification(
            query in "[a-z=&%0-9]{0,40}",
            field in 0usize..7,
            extra in "[a-zA-Z0-9]{1,4}",
        ) {
            let base = request(&query, EMPTY);
            let sig = base.sign(b"k");
            prop_assert!(base.verify(&sig, [b"k".as_slice()]).is_ok());
            let mut fields = [base.method, base.path, base.raw_query, base.principal,
                base.timestamp, base.nonce, base.content_sha256].map(str::to_owned);
            fields[field].push_str(&extra);
            let changed = HmacRequest {
                method: &fields[0], path: &fields[1], raw_query: &fields[2],
                principal: &fields[3], timestamp: &fields[4], nonce: &fields[5],
                content_sha256: &fields[6],
            };
            prop_assert_eq!(changed.verify(&sig, [b"k".as_slice()]), Err(HmacError::BadSignature));
        }
    }
}
