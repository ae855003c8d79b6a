//! Message authentication of docs/protocol.md: HMAC-SHA256 keyed with the reader's secret over
//! a `|`-joined string of the message's fields, as lowercase hex.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The lowercase hex HMAC-SHA256 of `input` keyed with the secret's UTF-8 bytes.
pub fn sign(secret: &str, input: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// True when `mac_hex` is the HMAC of `input` under `secret`; compared in constant time.
pub fn verify(secret: &str, input: &str, mac_hex: &str) -> bool {
    let Ok(expected) = hex::decode(mac_hex) else {
        return false;
    };
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            mac.verify_slice(&expected).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_rejects_tampering() {
        let mac = sign(
            "secret-a",
            "r1|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
        );
        assert!(verify(
            "secret-a",
            "r1|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
            &mac
        ));
        assert!(!verify(
            "secret-b",
            "r1|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
            &mac
        ));
        assert!(!verify(
            "secret-a",
            "r2|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
            &mac
        ));
        assert!(!verify(
            "secret-a",
            "r1|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
            "zz"
        ));
        assert!(!verify(
            "secret-a",
            "r1|grant|1042|d-1|5000||2026-11-24T08:01:02.131Z",
            ""
        ));
    }
}
