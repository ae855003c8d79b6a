//! The appliance key: 32 random bytes kept outside the database, from which the PIN pepper
//! and the audit chain's MAC key are derived; where it is kept, and the one in force.
//!
//! It lives in `data_dir/secret.key` (created 0600 on first start) or, when systemd passes
//! it, in `$CREDENTIALS_DIRECTORY/gatehouse.key`. Whoever holds only the database then can
//! neither guess PINs offline nor append audit entries that verify.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// The key file's name in the data folder.
pub const KEY_FILE: &str = "secret.key";
/// The name of the systemd credential that holds the key (`LoadCredential=gatehouse.key:…`).
pub const CREDENTIAL_NAME: &str = "gatehouse.key";

/// The key and the subkeys derived from it, each for one purpose only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplianceKey {
    pin_pepper: [u8; 32],
    audit_mac: [u8; 32],
    id: [u8; 6],
}

impl std::fmt::Debug for ApplianceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApplianceKey(id {})", hex::encode(self.id))
    }
}

/// HMAC-SHA256 of `message` under a 32-byte `key`.
pub fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    // HMAC pads a key shorter than SHA-256's 64-byte block with zeros, so the padded key is
    // the same key, and `new` with a full block cannot fail as `new_from_slice` might.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl ApplianceKey {
    pub fn from_master(master: &[u8; 32]) -> ApplianceKey {
        // Domain separation: a subkey for one purpose says nothing about another.
        let id = hmac_sha256(master, b"gatehouse key id v1");
        let mut short = [0u8; 6];
        short.copy_from_slice(&id[..6]);
        ApplianceKey {
            pin_pepper: hmac_sha256(master, b"gatehouse pin pepper v1"),
            audit_mac: hmac_sha256(master, b"gatehouse audit chain v1"),
            id: short,
        }
    }

    /// Argon2's secret input for PIN hashes.
    pub fn pin_pepper(&self) -> &[u8; 32] {
        &self.pin_pepper
    }

    /// The key of the audit chain's HMAC-SHA256.
    pub fn audit_mac_key(&self) -> &[u8; 32] {
        &self.audit_mac
    }

    /// A public fingerprint of the key, recorded in keyed PIN hashes (argon2's `keyid`):
    /// a hash made under another appliance's key is told apart, not just a mismatch.
    pub fn id(&self) -> &[u8; 6] {
        &self.id
    }
}

fn parse_master(text: &str, from: &Path) -> Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
    let Some(bytes) = bytes else {
        bail!(
            "{} is not an appliance key (64 hex digits); restore it from a backup, or \
             move it away to start with a new key (PINs set under the old key then stop \
             working and the audit log's keyed entries no longer verify)",
            from.display()
        );
    };
    let mut master = [0u8; 32];
    master.copy_from_slice(&bytes);
    Ok(master)
}

fn read_master(path: &Path) -> Result<Option<[u8; 32]>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path, "the appliance key");
            parse_master(&text, path).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the appliance key {}: {e} (run gatehouse as the user that owns \
             the data folder)",
            path.display()
        )),
    }
}

/// Writes a new key file, readable by its owner only. Refuses to replace one.
fn write_master(path: &Path, master: &[u8; 32]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the appliance key {}", path.display()))?;
    writeln!(file, "{}", hex::encode(master))?;
    file.sync_all()?;
    Ok(())
}

/// Mode bits for group and others, when `path` grants them any.
pub fn others_may_access(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then_some(mode & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Logs a warning when a file holding a secret may be read by group or others.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    if let Some(mode) = others_may_access(path) {
        tracing::warn!(
            "{what} {} is readable by other users (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

/// The key in force in this process, once `install_from` has run.
static INSTALLED: OnceLock<ApplianceKey> = OnceLock::new();
/// Held while a key is read, made or adopted, so that two starts cannot make two keys.
static INSTALLING: Mutex<()> = Mutex::new(());

/// The appliance key of this process, if one is installed.
pub fn installed() -> Option<&'static ApplianceKey> {
    INSTALLED.get()
}

/// Where the key comes from for `data_dir`: the systemd credential when there is one, else
/// the data folder's key file.
pub fn key_path(data_dir: &Path) -> (PathBuf, bool) {
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let credential = Path::new(&dir).join(CREDENTIAL_NAME);
        if credential.exists() {
            return (credential, true);
        }
    }
    (data_dir.join(KEY_FILE), false)
}

/// Loads the appliance key for `data_dir` and makes it the process's key. A new key is made
/// only when `may_create` (the database holds nothing keyed yet): a database keyed under a
/// key that is not here gets an error, not a second key. One appliance runs per process, so
/// there is one key: a data folder without a key file adopts the one in force (a private
/// copy, such as `simulate --day`'s, is the same appliance), and one whose key differs is
/// refused.
pub fn install_from(data_dir: &Path, may_create: bool) -> Result<&'static ApplianceKey> {
    let _guard = INSTALLING
        .lock()
        .map_err(|_| anyhow::anyhow!("the appliance key could not be loaded"))?;
    let (path, from_credential) = key_path(data_dir);
    let stored = read_master(&path)?;
    if let Some(current) = INSTALLED.get() {
        return match stored {
            Some(master) if ApplianceKey::from_master(&master) != *current => bail!(
                "{} holds another appliance key than the one this process uses",
                path.display()
            ),
            Some(_) => Ok(current),
            None => {
                // Only a fresh folder of this same appliance has no key: give it ours, so
                // that the CLI run on it finds it.
                let master = current_master()?;
                write_master(&path, &master)?;
                Ok(current)
            }
        };
    }
    let master = match stored {
        Some(master) => master,
        None if from_credential => bail!("the credential {} is gone", path.display()),
        None if !may_create => bail!(
            "the appliance key {} is missing, and the database holds entries keyed with it: \
             restore it from a backup (or, under systemd with LoadCredential, run the command \
             with the service's credential, e.g. through `systemd-run -P \
             -p LoadCredential=gatehouse.key:…`)",
            path.display()
        ),
        None => {
            let master: [u8; 32] = rand::rng().random();
            write_master(&path, &master)?;
            tracing::info!(
                "created the appliance key {} (back it up with the database: PINs and the \
                 audit log's keyed entries need it)",
                path.display()
            );
            master
        }
    };
    let _ = MASTER.set(master);
    Ok(INSTALLED.get_or_init(|| ApplianceKey::from_master(&master)))
}

/// The installed key's own bytes, kept only to give a fresh data folder the same key.
static MASTER: OnceLock<[u8; 32]> = OnceLock::new();

fn current_master() -> Result<[u8; 32]> {
    MASTER
        .get()
        .copied()
        .context("the appliance key in force has no key file to copy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_and_by_key() {
        let a = ApplianceKey::from_master(&[7u8; 32]);
        let b = ApplianceKey::from_master(&[8u8; 32]);
        assert_ne!(a.pin_pepper(), a.audit_mac_key());
        assert_ne!(a.pin_pepper(), b.pin_pepper());
        assert_ne!(a.id(), b.id());
        assert_eq!(a, ApplianceKey::from_master(&[7u8; 32]));
        assert!(!format!("{a:?}").contains(&hex::encode(a.pin_pepper())));
    }

    #[test]
    fn the_padded_key_gives_plain_hmac_sha256() {
        let key = [9u8; 32];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"audit");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(hmac_sha256(&key, b"audit"), expected);
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not a key\n").unwrap();
        let err = read_master(&path).unwrap_err().to_string();
        assert!(err.contains("is not an appliance key"), "{err}");
        std::fs::write(&path, format!("{}\n", hex::encode([1u8; 32]))).unwrap();
        assert_eq!(read_master(&path).unwrap(), Some([1u8; 32]));
    }

    #[test]
    fn a_new_key_file_is_for_its_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        write_master(&path, &[3u8; 32]).unwrap();
        assert_eq!(others_may_access(&path), None);
        assert!(write_master(&path, &[4u8; 32]).is_err());
        assert_eq!(read_master(&path).unwrap(), Some([3u8; 32]));
    }
}
