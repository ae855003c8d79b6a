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

/// Compares two secrets in time that depends only on their lengths, not on where they
/// first differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The most memory (KiB) and passes a stored hash may ask for. Verification reads the cost
/// from the hash itself, and PINs are checked on the swipe path: a hash imported or edited
/// with a huge cost must not be able to stall or exhaust the appliance.
const MAX_M_COST_KIB: u32 = 262_144;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 4;

/// True when `phc` is an argon2id PHC string whose cost is at least OWASP's minimum and at
/// most what the appliance is willing to spend per check.
pub fn is_acceptable_hash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    // The parameter segment is `m=…,t=…,p=…`, the fourth `$`-separated field.
    let Some(params) = phc.split('$').nth(3) else {
        return false;
    };
    let mut cost = (None, None, None);
    for pair in params.split(',') {
        match pair.split_once('=') {
            Some(("m", v)) => cost.0 = v.parse::<u32>().ok(),
            Some(("t", v)) => cost.1 = v.parse::<u32>().ok(),
            Some(("p", v)) => cost.2 = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    matches!(cost, (Some(m), Some(t), Some(p))
        if (M_COST_KIB..=MAX_M_COST_KIB).contains(&m)
            && (1..=MAX_T_COST).contains(&t)
            && (1..=MAX_P_COST).contains(&p)
            && m.saturating_mul(t) >= M_COST_KIB * T_COST)
}

/// True when `plain` matches the stored PHC string. A malformed, unsupported or
/// unreasonably expensive hash is a mismatch, never a panic: a corrupt row must deny, not
/// crash or stall the decision path.
pub fn verify_secret(phc: &str, plain: &str) -> bool {
    if !is_acceptable_hash(phc) {
        return false;
    }
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
    fn hashes_outside_the_cost_bounds_are_refused() {
        let phc = hash_secret("4821").unwrap();
        assert!(is_acceptable_hash(&phc));
        let huge = phc.replace("m=19456", "m=4194304");
        assert!(!is_acceptable_hash(&huge));
        assert!(
            !verify_secret(&huge, "4821"),
            "never spend 4 GiB on one check"
        );
        let weak = phc.replace("m=19456,t=2", "m=8,t=1");
        assert!(!is_acceptable_hash(&weak));
        assert!(!is_acceptable_hash(&phc.replace("argon2id", "argon2i")));
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
