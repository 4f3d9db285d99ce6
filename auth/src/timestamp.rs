//! The replay window shared by both schemes: a request may be at most 300 s old and at most
//! 60 s ahead of the server's clock.

/// How old a signed request may be, in seconds.
pub const MAX_AGE_SECS: i64 = 300;
/// How far ahead of the server's clock a signed request may be, in seconds.
pub const MAX_AHEAD_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("request timestamp is more than {MAX_AGE_SECS} s old")]
    TooOld,
    #[error("request timestamp is more than {MAX_AHEAD_SECS} s in the future")]
    TooFarAhead,
}

/// Checks a request time against the server's clock, both in milliseconds so the two schemes
/// (seconds for HMAC, milliseconds for wallets) share one rule.
pub fn check_window(request_ms: i64, now_ms: i64) -> Result<(), WindowError> {
    let age_ms = now_ms.saturating_sub(request_ms);
    if age_ms > MAX_AGE_SECS * 1000 {
        Err(WindowError::TooOld)
    } else if age_ms < -MAX_AHEAD_SECS * 1000 {
        Err(WindowError::TooFarAhead)
    } else {
        Ok(())
    }
}

/// Parses a decimal timestamp strictly: ASCII digits only, at most 16 of them, so that no two
/// spellings of one value and no signs or spaces reach the canonical string.
pub fn parse_decimal(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn window_edges_are_inclusive() {
        assert_eq!(check_window(NOW - 300_000, NOW), Ok(()));
        assert_eq!(check_window(NOW + 60_000, NOW), Ok(()));
        assert_eq!(check_window(NOW - 301_000, NOW), Err(WindowError::TooOld));
        assert_eq!(
            check_window(NOW + 61_000, NOW),
            Err(WindowError::TooFarAhead)
        );
    }

    #[test]
    fn decimal_parser_rejects_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal("1700000000"), Some(1_700_000_000));
        for bad in ["", "-1", "+1", " 1", "1 ", "1e9", "99999999999999999"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
