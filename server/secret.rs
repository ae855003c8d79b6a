//! Argon2id hashing of everything Gatehouse must check but never store in clear:
//! admin passwords, credential PINs and reader secrets, as self-describing PHC strings.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's recommended argon2id minimum (Password Storage Cheat Sheet): 19 MiB, 2 passes,
/// 1 lane. Verification reads the parameters from the stored hash, so raising these later
/// keeps old hashes valid.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("could not hash the secret: {0}")]
    Hash(argon2::password_hash::Error),
}

fn hasher() -> Result<Argon2<'static>, SecretError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(SecretError::Params)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `plain` with argon2id and a fresh random salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`) to store.
pub fn hash_secret(plain: &str) -> Result<String, SecretError> {
    let hash = hasher()?
        .hash_password(plain.as_bytes())
        .map_err(SecretError::Hash)?;
    Ok(hash.to_string())
}

/// True when `plain` matches the stored PHC string. A malformed or unsupported hash is a
/// mismatch, never a panic: a corrupt row must deny, not crash the decision path.
pub fn verify_secret(phc: &str, plain: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(plain.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_uses_argon2id_with_owasp_parameters() {
        let phc = hash_secret("4821").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_secret(&phc, "4821"));
    }

    #[test]
    fn wrong_secret_is_rejected_and_salts_differ() {
        let a = hash_secret("correct horse").unwrap();
        let b = hash_secret("correct horse").unwrap();
        assert_ne!(a, b, "every hash gets its own salt");
        assert!(!verify_secret(&a, "correct horsE"));
        assert!(!verify_secret(&a, ""));
    }

    #[test]
    fn malformed_hash_is_a_mismatch() {
        for bad in [
            "",
            "4821",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$md5$x$y",
        ] {
            assert!(!verify_secret(bad, "4821"), "{bad:?}");
        }
    }
}
