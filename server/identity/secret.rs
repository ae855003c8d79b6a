//! Argon2id hashing of what Gatehouse must check but never store in clear (admin passwords,
//! credential PINs), the bounded pool those checks run on, and SHA-256 digests of random
//! secrets. PINs are keyed with the appliance key's pepper (`hash_pin`, `verify_pin`).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, KeyId, Params, ParamsBuilder, Version};

use crate::identity::appliance_key::ApplianceKey;

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
    #[error("no appliance key is loaded, so a PIN cannot be hashed")]
    NoApplianceKey,
    /// Every argon2id worker is busy and the queue is full: try again in a moment.
    #[error("too many password checks at once; try again in a moment")]
    Busy,
    #[error("the password check failed unexpectedly")]
    Failed,
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
    bytes_eq(a.as_bytes(), b.as_bytes())
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
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut memory = working_memory(params.block_count());
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(plain.as_bytes(), salt, &mut computed, &mut memory[..])
        .is_ok()
        && bytes_eq(&computed, expected.as_bytes())
}

/// Blocks of address space reserved for one check, whatever its cost asks for: 33 MiB,
/// above glibc's largest mmap threshold (32 MiB on 64-bit). An allocation that large is
/// always a mapping of its own, given back to the system when the check ends; argon2id's
/// 19 MiB alone would come from the worker thread's arena and stay resident after it.
/// Only the blocks the cost asks for are touched, so only they are ever resident.
const ALWAYS_MAPPED_BLOCKS: usize = 33 * 1024;

fn working_memory(blocks: usize) -> Vec<Block> {
    let mut memory = Vec::with_capacity(blocks.max(ALWAYS_MAPPED_BLOCKS));
    memory.resize(blocks, Block::default());
    memory
}

/// Compares two byte strings in time that depends only on their lengths.
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SHA-256 of a random secret (API tokens, console sessions), hex: what is stored and
/// compared. A 256-bit random value cannot be guessed, so a slow salted hash would add
/// nothing but a way to make the appliance burn CPU and memory per request.
pub fn digest_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Which queue an argon2id check waits in. A PIN typed at a door must not wait behind a
/// burst of sign-in attempts, so doors have a worker of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// PINs at card+PIN doors.
    Door,
    /// Everything else: console passwords, API tokens issued before digests.
    General,
}

type Job = Box<dyn FnOnce() + Send>;

/// Checks waiting per worker before the pool answers `Busy`: a few hundred milliseconds of
/// work, so that a burst is refused at once instead of queueing without end.
const QUEUE_PER_WORKER: usize = 8;
/// The door lane's queue: swipes arrive a few at a time and must not be refused.
const DOOR_QUEUE: usize = 64;

/// A few threads of its own that run every argon2id check, so that at most
/// `general_workers + 1` blocks of 19 MiB exist at once, whatever arrives; page and
/// database work (the blocking pools of the runtimes) never waits behind them.
pub struct Argon2Pool {
    door: SyncSender<Job>,
    general: SyncSender<Job>,
    workers: usize,
}

impl Argon2Pool {
    /// Starts `general_workers` workers for the general lane and one for doors.
    pub fn start(general_workers: usize) -> Argon2Pool {
        let general_workers = general_workers.max(1);
        let (door, door_jobs) = std::sync::mpsc::sync_channel::<Job>(DOOR_QUEUE);
        let (general, general_jobs) =
            std::sync::mpsc::sync_channel::<Job>(general_workers * QUEUE_PER_WORKER);
        spawn_worker("argon2-door".to_owned(), Arc::new(Mutex::new(door_jobs)));
        let general_jobs = Arc::new(Mutex::new(general_jobs));
        for n in 0..general_workers {
            spawn_worker(format!("argon2-{n}"), general_jobs.clone());
        }
        Argon2Pool {
            door,
            general,
            workers: general_workers + 1,
        }
    }

    /// How many argon2id checks may run at once (the workers of both lanes).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Queues `f` (which runs argon2id) on a worker of `lane` at once and returns the
    /// future of its result; `Busy` when the lane's queue is full.
    pub fn run<T, F>(
        &self,
        lane: Lane,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, SecretError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(f());
        });
        let queue = match lane {
            Lane::Door => &self.door,
            Lane::General => &self.general,
        };
        let queued = queue.try_send(job);
        async move {
            match queued {
                Ok(()) => answered.await.map_err(|_| SecretError::Failed),
                Err(TrySendError::Full(_)) => Err(SecretError::Busy),
                Err(TrySendError::Disconnected(_)) => Err(SecretError::Failed),
            }
        }
    }

    /// `verify_secret` on a worker of `lane`.
    pub fn verify(
        &self,
        lane: Lane,
        phc: String,
        plain: String,
    ) -> impl std::future::Future<Output = Result<bool, SecretError>> + use<> {
        self.run(lane, move || verify_secret(&phc, &plain))
    }
}

fn spawn_worker(name: String, jobs: Arc<Mutex<Receiver<Job>>>) {
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        loop {
            // The lock is held only while waiting for the next job, not while running it.
            let next = match jobs.lock() {
                Ok(receiver) => receiver.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            let Ok(job) = next else { return };
            // A panicking check drops its answer (the caller sees `Failed`); the worker lives on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "an argon2id worker thread could not be started");
    }
}

/// The process's argon2id pool: one general worker per core (at most four) and one for doors.
pub fn pool() -> &'static Argon2Pool {
    static POOL: OnceLock<Argon2Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Argon2Pool::start(cores.clamp(1, 4))
    })
}

/// Hashes a PIN with argon2id keyed by the appliance key's pepper (argon2's secret input),
/// the key's id recorded as `keyid` in the PHC string. A PIN has few possible values: without
/// the key, which is not in the database, the hash cannot be checked against any of them.
pub fn hash_pin(key: Option<&ApplianceKey>, pin: &str) -> Result<String, SecretError> {
    let key = key.ok_or(SecretError::NoApplianceKey)?;
    let keyid = KeyId::new(key.id()).map_err(SecretError::Params)?;
    let params = ParamsBuilder::new()
        .m_cost(M_COST_KIB)
        .t_cost(T_COST)
        .p_cost(P_COST)
        .keyid(keyid)
        .build()
        .map_err(SecretError::Params)?;
    let hasher = Argon2::new_with_secret(
        key.pin_pepper(),
        Algorithm::Argon2id,
        Version::V0x13,
        params,
    )
    .map_err(SecretError::Params)?;
    let hash = hasher
        .hash_password(pin.as_bytes())
        .map_err(SecretError::Hash)?;
    Ok(hash.to_string())
}

/// The `keyid` a PIN hash was keyed with; None for a hash made before PINs were keyed.
fn pin_key_id(parsed: &PasswordHash) -> Option<Vec<u8>> {
    let params = Params::try_from(parsed).ok()?;
    let id = params.keyid();
    (!id.is_empty()).then(|| id.to_vec())
}

/// True when a stored PIN hash is keyed with an appliance key (not the older, unkeyed form).
pub fn is_keyed_pin_hash(phc: &str) -> bool {
    PasswordHash::new(phc)
        .ok()
        .is_some_and(|parsed| pin_key_id(&parsed).is_some())
}

/// True when a stored PIN hash was keyed with another appliance's key (a site file from
/// another appliance): no PIN can ever match it here.
pub fn is_foreign_pin_hash(key: Option<&ApplianceKey>, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match (pin_key_id(&parsed), key) {
        (Some(id), Some(key)) => id != key.id(),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// True when `pin` matches a stored PIN hash: a keyed one with the appliance key's pepper,
/// one made before PINs were keyed (no `keyid`) as it was made, so that existing PINs keep
/// working until they are next changed. A hash keyed with another key never matches.
pub fn verify_pin(key: Option<&ApplianceKey>, phc: &str, pin: &str) -> bool {
    if !is_acceptable_hash(phc) {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match pin_key_id(&parsed) {
        None => Argon2::default()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok(),
        Some(id) => {
            let Some(key) = key.filter(|k| k.id().as_slice() == id.as_slice()) else {
                return false;
            };
            let Ok(params) = Params::try_from(&parsed) else {
                return false;
            };
            Argon2::new_with_secret(
                key.pin_pepper(),
                Algorithm::Argon2id,
                Version::V0x13,
                params,
            )
            .is_ok_and(|hasher| hasher.verify_password(pin.as_bytes(), &parsed).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_hash_verifies_only_with_the_key_it_was_made_with() {
        let key = ApplianceKey::from_master(&[1u8; 32]);
        let other = ApplianceKey::from_master(&[2u8; 32]);
        let phc = hash_pin(Some(&key), "4821").unwrap();
        assert!(
            phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1,keyid="),
            "{phc}"
        );
        assert!(is_acceptable_hash(&phc));
        assert!(is_keyed_pin_hash(&phc));
        assert!(verify_pin(Some(&key), &phc, "4821"));
        assert!(!verify_pin(Some(&key), &phc, "4822"));
        // Someone with only the database: neither without the key nor with a guessed
        // one does the right PIN match.
        assert!(!verify_pin(None, &phc, "4821"));
        assert!(!verify_secret(&phc, "4821"));
        assert!(!verify_pin(Some(&other), &phc, "4821"));
        assert!(is_foreign_pin_hash(Some(&other), &phc));
        assert!(!is_foreign_pin_hash(Some(&key), &phc));
        // Even a hash relabelled with the other key's id does not verify under it.
        let other_params = hash_pin(Some(&other), "0").unwrap();
        let other_params = other_params.split('$').nth(3).unwrap();
        let relabelled = phc.replace(phc.split('$').nth(3).unwrap(), other_params);
        assert!(!verify_pin(Some(&other), &relabelled, "4821"));
        assert!(matches!(
            hash_pin(None, "4821"),
            Err(SecretError::NoApplianceKey)
        ));
    }

    #[test]
    fn pin_hashes_made_before_pins_were_keyed_still_verify() {
        let key = ApplianceKey::from_master(&[1u8; 32]);
        let old = hash_secret("4821").unwrap();
        assert!(!is_keyed_pin_hash(&old));
        assert!(!is_foreign_pin_hash(Some(&key), &old));
        assert!(verify_pin(Some(&key), &old, "4821"));
        assert!(verify_pin(None, &old, "4821"));
        assert!(!verify_pin(Some(&key), &old, "1234"));
    }

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

    #[test]
    fn hashes_of_other_acceptable_costs_and_versions_verify() {
        // Made by the argon2 crate itself, with costs other than ours and the older version.
        for (version, m, t) in [
            (Version::V0x13, 32_768, 3),
            (Version::V0x13, 19_456, 2),
            (Version::V0x10, 19_456, 2),
        ] {
            let params = Params::new(m, t, 1, None).unwrap();
            let phc = Argon2::new(Algorithm::Argon2id, version, params)
                .hash_password(b"correct horse")
                .unwrap()
                .to_string();
            assert!(verify_secret(&phc, "correct horse"), "{phc}");
            assert!(!verify_secret(&phc, "correct horsE"), "{phc}");
        }
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_full_general_lane_refuses_at_once_and_doors_still_get_through() {
        let pool = Argon2Pool::start(1);
        assert_eq!(pool.workers(), 2);
        // Hold the one general worker until told.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let holding = pool.run(Lane::General, move || {
            let _ = started.send(());
            let _ = held.recv();
            "held"
        });
        running.await.unwrap();
        // Fill the queue behind it.
        let queued: Vec<_> = (0..QUEUE_PER_WORKER)
            .map(|n| pool.run(Lane::General, move || n))
            .collect();
        let refused = pool.run(Lane::General, || 0usize).await;
        assert!(matches!(refused, Err(SecretError::Busy)), "{refused:?}");
        // A door's PIN check does not wait behind any of that.
        let phc = hash_secret("4821").unwrap();
        let door = pool.verify(Lane::Door, phc, "4821".to_owned()).await;
        assert!(door.unwrap());
        release.send(()).unwrap();
        assert_eq!(holding.await.unwrap(), "held");
        for (n, job) in queued.into_iter().enumerate() {
            assert_eq!(job.await.unwrap(), n);
        }
    }

    #[tokio::test]
    async fn a_panicking_check_fails_alone_and_the_worker_lives_on() {
        let pool = Argon2Pool::start(1);
        let failed = pool
            .run(Lane::General, || -> usize { panic!("boom") })
            .await;
        assert!(matches!(failed, Err(SecretError::Failed)));
        assert_eq!(pool.run(Lane::General, || 7).await.unwrap(), 7);
    }
}
