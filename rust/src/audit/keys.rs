//! Local Ed25519 key files: 64 hex digits of seed, mode 0600; `<file>.pub` holds the public key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};

use super::format::{hex, unhex};

fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Load the key file, creating it (0600) with a fresh key when it does not exist.
pub fn load_or_create(path: &Path) -> Result<SigningKey, String> {
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "audit key file {} is readable by group or others (mode {:o}); run chmod 600 on it",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ));
            }
            let text =
                fs::read_to_string(path).map_err(|e| format!("cannot read audit key file {}: {e}", path.display()))?;
            let seed = unhex(&text).filter(|b| b.len() == 32).ok_or_else(|| {
                format!("audit key file {} must hold 64 hex digits (an Ed25519 seed)", path.display())
            })?;
            let key = SigningKey::from_bytes(seed.as_slice().try_into().unwrap());
            let pp = pub_path(path);
            if !pp.exists() {
                let _ = fs::write(&pp, format!("{}\n", hex(&key.verifying_key().to_bytes())));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                if !parent.as_os_str().is_empty() {
                    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
            }
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create audit key file {}: {e}", path.display()))?;
            f.write_all(format!("{}\n", hex(&seed)).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write audit key file {}: {e}", path.display()))?;
            fs::write(pub_path(path), format!("{}\n", hex(&key.verifying_key().to_bytes())))
                .map_err(|e| format!("cannot write {}: {e}", pub_path(path).display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("cannot read audit key file {}: {e}", path.display())),
    }
}

/// Read a public key given as 64 hex digits or as a file holding them (a `.pub` file, or a key
/// file, whose public key is derived).
pub fn parse_public_key(spec: &str) -> Result<[u8; 32], String> {
    if let Some(b) = unhex(spec).filter(|b| b.len() == 32) {
        return Ok(b.try_into().unwrap());
    }
    let p = Path::new(spec);
    let text =
        fs::read_to_string(p).map_err(|e| format!("--key {spec}: not 64 hex digits and not a readable file ({e})"))?;
    let b =
        unhex(&text).filter(|b| b.len() == 32).ok_or_else(|| format!("--key file {spec} must hold 64 hex digits"))?;
    let arr: [u8; 32] = b.try_into().unwrap();
    if spec.ends_with(".pub") {
        Ok(arr)
    } else {
        Ok(SigningKey::from_bytes(&arr).verifying_key().to_bytes())
    }
}
