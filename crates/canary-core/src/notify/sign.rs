//! The signature of a webhook notice: `X-Kubectl-Canary-Signature: t=<unix seconds>,v1=<hex>`
//! where the hex is HMAC-SHA256 over `"<t>.<body>"` with the endpoint's signing key. A
//! receiver recomputes it over the raw body, compares in constant time, and refuses a `t`
//! too far from its own clock (a replayed request carries an old `t`, and `t` cannot be
//! changed without the key).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Kubectl-Canary-Signature";

/// How far a receiver should accept `t` from its own clock, in seconds (by default).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` with `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

/// The header value signing `body` at `unix_seconds` with `key`.
pub fn signature_header(key: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        hmac_sha256_hex(key, &signed_message(unix_seconds, body))
    )
}

fn signed_message(unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{unix_seconds}.").into_bytes();
    message.extend_from_slice(body);
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("the signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    /// `t` is too far from the receiver's clock: a replay, or a clock far off.
    #[error("the signature's time {t} is {off} s away from now (at most {tolerance} s accepted)")]
    Stale {
        /// The header's time.
        t: i64,
        /// How far from now.
        off: i64,
        /// The accepted distance.
        tolerance: i64,
    },
    /// The HMAC does not match: another key, or a changed body or time.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Verifies `header` over the raw `body` with `key`, at the receiver's time `now` (unix
/// seconds), accepting `t` at most `tolerance` seconds away. What a receiver does.
pub fn verify_signature(
    key: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    let off = (now - t).abs();
    if off > tolerance {
        return Err(SignatureError::Stale { t, off, tolerance });
    }
    let Some(expected) = unhex(v1) else {
        return Err(SignatureError::Malformed);
    };
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&signed_message(t, body));
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_header_signs_time_and_body() {
        // Computed independently: printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature_header(b"key", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }

    #[test]
    fn receivers_refuse_what_was_not_signed_so_or_is_replayed() {
        let body = br#"{"kind":"Notice"}"#;
        let header = signature_header(b"k1", 1000, body);
        /// (key, header, body, the receiver's time, the answer)
        type Case<'a> = (&'a [u8], &'a str, &'a [u8], i64, Result<(), SignatureError>);
        let cases: [Case; 6] = [
            (b"k1", &header, body, 1010, Ok(())),
            (b"k2", &header, body, 1010, Err(SignatureError::Mismatch)),
            (b"k1", &header, b"{}", 1010, Err(SignatureError::Mismatch)),
            (
                b"k1",
                &header,
                body,
                1400,
                Err(SignatureError::Stale {
                    t: 1000,
                    off: 400,
                    tolerance: 300,
                }),
            ),
            (b"k1", "v1=00", body, 1000, Err(SignatureError::Malformed)),
            (
                b"k1",
                "t=1000,v1=zz",
                body,
                1000,
                Err(SignatureError::Malformed),
            ),
        ];
        for (key, header, body, now, expected) in cases {
            assert_eq!(
                verify_signature(key, header, body, now, DEFAULT_TOLERANCE_SECS),
                expected,
                "{header} at {now}"
            );
        }
        // The time is signed too: moving it forward breaks the signature.
        let moved = header.replace("t=1000", "t=1300");
        assert_eq!(
            verify_signature(b"k1", &moved, body, 1300, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }
}
