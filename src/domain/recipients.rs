//! A principal's published age recipients (DESIGN §19): 1 to 8 X25519 public keys, each
//! parsed by the `age` crate, kept in their canonical form. Post-quantum `age1pq1...`
//! recipients are refused: the `age` crate this build uses (0.11) cannot encrypt to them.

use super::Invalid;
use std::str::FromStr;

/// 1 to [`AgeRecipients::MAX`] distinct X25519 recipients, canonical (lower-case bech32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeRecipients(Vec<String>);

/// How much of a refused recipient an error message repeats.
const SHOWN: usize = 80;

/// The start of a refused value, printable ASCII only, for an error message.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SHOWN)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if text.chars().count() > SHOWN {
        out.push_str("...");
    }
    out
}

impl AgeRecipients {
    pub const MAX: usize = 8;

    /// Parses the recipients a principal publishes. Errors name the offending recipient by
    /// its position (1-based) and its first characters.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, Invalid> {
        if list.is_empty() || list.len() > Self::MAX {
            return Err(Invalid(format!(
                "publish 1 to {} age recipients (got {})",
                Self::MAX,
                list.len()
            )));
        }
        let mut parsed: Vec<String> = Vec::with_capacity(list.len());
        for (n, text) in list.iter().map(AsRef::as_ref).enumerate() {
            let position = n.saturating_add(1);
            if text
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("age1pq1"))
            {
                return Err(Invalid(format!(
                    "recipient {position} ({}) is a post-quantum age recipient; this vault \
                     accepts X25519 recipients (age1...) only",
                    shown(text)
                )));
            }
            let recipient = age::x25519::Recipient::from_str(text).map_err(|e| {
                Invalid(format!(
                    "recipient {position} ({}) is not a valid X25519 age recipient: {e}",
                    shown(text)
                ))
            })?;
            let canonical = recipient.to_string();
            if parsed.contains(&canonical) {
                return Err(Invalid(format!(
                    "recipient {position} ({}) is listed twice",
                    shown(text)
                )));
            }
            parsed.push(canonical);
        }
        Ok(Self(parsed))
    }

    /// The stored form of a list that was parsed before: one per line. A stored list that
    /// no longer parses is an error, never an empty list.
    pub fn from_stored(text: &str) -> Result<Self, Invalid> {
        let lines: Vec<&str> = text.lines().collect();
        Self::parse(&lines)
    }

    pub fn to_stored(&self) -> String {
        self.0.join("\n")
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    #[test]
    fn one_to_eight_recipients_are_accepted_in_canonical_form() {
        let one = recipient();
        let parsed = AgeRecipients::parse(&[one.to_uppercase()]);
        assert_eq!(parsed.map(AgeRecipients::into_vec), Ok(vec![one]));
        let eight: Vec<String> = (0..8).map(|_| recipient()).collect();
        let parsed = AgeRecipients::parse(&eight).map(|r| r.to_stored());
        assert_eq!(parsed, Ok(eight.join("\n")));
        let stored = AgeRecipients::parse(&eight)
            .map(|r| r.to_stored())
            .unwrap_or_default();
        assert_eq!(
            AgeRecipients::from_stored(&stored).map(AgeRecipients::into_vec),
            Ok(eight)
        );
    }

    #[test]
    fn none_or_more_than_eight_are_refused() {
        let none: [&str; 0] = [];
        assert!(AgeRecipients::parse(&none).is_err());
        let nine: Vec<String> = (0..9).map(|_| recipient()).collect();
        let err = AgeRecipients::parse(&nine).unwrap_err();
        assert!(err.0.contains("1 to 8"), "{err}");
    }

    #[test]
    fn an_invalid_recipient_is_named_by_position() {
        let good = recipient();
        let mut bad = good.clone();
        bad.pop();
        bad.push(if good.ends_with('q') { 'p' } else { 'q' });
        for (list, needle) in [
            (vec![good.clone(), bad.clone()], "recipient 2"),
            (
                vec!["ssh-ed25519 AAAA".to_owned()],
                "recipient 1 (ssh-ed25519",
            ),
            (vec![good.clone(), "age1pq1abc".to_owned()], "post-quantum"),
            (vec![good.clone(), good.to_uppercase()], "listed twice"),
            (vec!["\u{202e}age1".to_owned()], "recipient 1 (?age1)"),
        ] {
            let err = AgeRecipients::parse(&list).unwrap_err();
            assert!(err.0.contains(needle), "{list:?}: {err}");
        }
        let long = "x".repeat(10_000);
        let err = AgeRecipients::parse(&[long]).unwrap_err();
        assert!(
            err.0.len() < 300,
            "a refusal repeats a bounded prefix: {err}"
        );
    }
}
