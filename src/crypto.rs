//! Encryption of account credentials at rest (XChaCha20-Poly1305, RustCrypto).
//!
//! The key never sits in the database: it comes from `PICKET_SECRET_KEY` (base64 of 32
//! bytes) or from a key file created on first use beside the database, readable only by
//! its owner. A stolen database file alone therefore reveals no token. Each value gets a
//! fresh random 192-bit nonce (safe to draw at random, unlike 96-bit ones), stored in
//! front of the ciphertext with a version byte so the scheme can change:
//!
//! | version | layout | associated data |
//! |---|---|---|
//! | 2 (sealed now) | `02 ‖ nonce ‖ ciphertext+tag` | `picket account credentials ‖ id` (8 bytes, big-endian) |
//! | 1 (read only)  | `01 ‖ nonce ‖ ciphertext+tag` | none |
//!
//! Version 2 binds a blob to the account row it belongs to: someone who can write to the
//! database but has no key cannot copy one account's credentials onto another row (their
//! own account, say) and have picket use them there; the copy fails to open. Version 1
//! blobs, sealed before, still open, and `participation::reseal_legacy_credentials`
//! rewrites them as version 2 when a long-running picket starts. A copy of the database
//! must keep account ids as they are (a dump and restore does).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;

use crate::domain::{Sealed, Secret};

/// The format sealed now: bound to the account id.
pub const VERSION: u8 = 2;
/// The first format, without associated data: opened, never sealed any more.
pub const LEGACY_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// What the associated data of a version 2 blob starts with, before the account id.
const AAD_PREFIX: &[u8] = b"picket account credentials ";

/// Why credentials could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not base64 of exactly 32 bytes.
    #[error("PICKET_SECRET_KEY must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)")]
    BadKey,
    /// The key file could not be read or created.
    #[error("key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ciphertext was not made with this key, or was altered.
    #[error("credentials cannot be decrypted with this key (was PICKET_SECRET_KEY changed?)")]
    Decrypt,
}

/// Seals and opens credentials.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
    /// Derived from the key with its own label, so a keyed hash never reveals the key.
    hash_key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([key redacted])")
    }
}

impl Vault {
    pub fn from_key_bytes(key: &[u8; 32]) -> Vault {
        use sha2::Digest;
        let hash_key = sha2::Sha256::new()
            .chain_update(b"picket keyed hash key\0")
            .chain_update(key)
            .finalize()
            .into();
        Vault {
            cipher: XChaCha20Poly1305::new(&(*key).into()),
            hash_key,
        }
    }

    pub fn from_base64(key: &Secret) -> Result<Vault, CryptoError> {
        let bytes = B64
            .decode(key.expose().trim())
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Vault::from_key_bytes(&key))
    }

    /// The configured key, else the key file at `path`, created (mode 0600) if missing.
    pub fn open(configured: Option<&Secret>, path: &Path) -> Result<Vault, CryptoError> {
        if let Some(k) = configured {
            return Vault::from_base64(k);
        }
        let io = |source| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Vault::from_base64(&Secret::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(path, B64.encode(key).as_bytes()).map_err(io)?;
                Ok(Vault::from_key_bytes(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seal the credentials of account `account` (its id), bound to it.
    pub fn seal_for(&self, account: i64, plaintext: &[u8]) -> Sealed {
        Sealed::new(self.seal_with(&associated_data(account), plaintext))
    }

    /// Seal a value that is not an account's credentials (a sandbox token), bound to its
    /// `purpose`, so it can never be taken for credentials or for another purpose's value.
    pub fn seal_purpose(&self, purpose: &str, plaintext: &[u8]) -> Sealed {
        Sealed::new(self.seal_with(&purpose_data(purpose), plaintext))
    }

    /// A salted hash of `value` for `purpose` (hex): the same value hashes the same on this
    /// host (its key is the salt), so it can be counted and compared without being kept,
    /// and no one without the key can test a guess against it.
    pub fn keyed_hash(&self, purpose: &str, value: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(self.hash_key)
            .chain_update((purpose.len() as u64).to_be_bytes())
            .chain_update(purpose.as_bytes())
            .chain_update(value.as_bytes())
            .finalize();
        hex::encode(digest)
    }

    /// Open what [`Vault::seal_purpose`] sealed for the same `purpose`.
    pub fn open_purpose(&self, purpose: &str, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        let sealed = sealed.as_bytes();
        if sealed.first() != Some(&VERSION) {
            return Err(CryptoError::Decrypt);
        }
        self.open_with(&purpose_data(purpose), sealed)
    }

    fn seal_with(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("encryption into a Vec cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("length checked");
        let msg = &sealed[1 + NONCE_LEN..];
        self.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg, aad })
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Open the credentials stored on account `account`'s row: sealed for that account, or
    /// in the legacy format that named no account.
    pub fn open_for(&self, account: i64, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        let sealed = sealed.as_bytes();
        let aad = match sealed.first() {
            Some(&VERSION) => associated_data(account),
            Some(&LEGACY_VERSION) => Vec::new(),
            _ => return Err(CryptoError::Decrypt),
        };
        self.open_with(&aad, sealed)
    }

    /// Whether `sealed` is in a format older than the one [`Vault::seal_for`] writes.
    pub fn is_legacy(sealed: &Sealed) -> bool {
        sealed.as_bytes().first() == Some(&LEGACY_VERSION)
    }
}

/// Associated data of a value sealed for a purpose other than an account's credentials:
/// a prefix of its own, so no purpose's value opens as an account's and the other way round.
fn purpose_data(purpose: &str) -> Vec<u8> {
    [b"picket purpose ".as_slice(), purpose.as_bytes()].concat()
}

fn associated_data(account: i64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 8);
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(&account.to_be_bytes());
    aad
}

/// Create `path` readable and writable by its owner only, failing if it exists (two
/// processes starting at once must not overwrite each other's key).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Where the key file lives for a database URL: beside a SQLite file, else in the
/// working directory.
pub fn key_file_for(database_url: &str) -> PathBuf {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p));
    match path {
        Some(p) if !p.is_empty() && p != ":memory:" => {
            let p = Path::new(p);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.with_file_name(format!("{name}.key"))
        }
        _ => PathBuf::from("picket.key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_hash_is_stable_per_key_and_purpose_and_differs_across_them() {
        let v = Vault::from_key_bytes(&[7; 32]);
        let h = v.keyed_hash("census author", "alice@m.example");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("alice"));
        assert_eq!(h, v.keyed_hash("census author", "alice@m.example"));
        assert_ne!(h, v.keyed_hash("census author", "bob@m.example"));
        assert_ne!(h, v.keyed_hash("another purpose", "alice@m.example"));
        assert_ne!(
            h,
            Vault::from_key_bytes(&[8; 32]).keyed_hash("census author", "alice@m.example")
        );
        // The purpose's length is hashed too, so moving bytes between the two differs.
        assert_ne!(v.keyed_hash("ab", "c"), v.keyed_hash("a", "bc"));
    }

    #[test]
    fn sealed_credentials_open_with_the_same_key_only() {
        let v = Vault::from_key_bytes(&[7; 32]);
        let sealed = v.seal_for(5, b"token-abc");
        assert!(!sealed.as_bytes().windows(9).any(|w| w == b"token-abc"));
        assert_eq!(sealed.as_bytes()[0], VERSION);
        assert_eq!(v.open_for(5, &sealed).unwrap(), b"token-abc");
        let other = Vault::from_key_bytes(&[8; 32]);
        assert!(matches!(
            other.open_for(5, &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn a_value_sealed_for_a_purpose_opens_for_that_purpose_only_and_never_as_credentials() {
        let v = Vault::from_key_bytes(&[7; 32]);
        let token = v.seal_purpose("sandbox token", b"label");
        assert_eq!(v.open_purpose("sandbox token", &token).unwrap(), b"label");
        assert!(v.open_purpose("another purpose", &token).is_err());
        assert!((0..4).all(|id| v.open_for(id, &token).is_err()));
        let credentials = v.seal_for(1, b"label");
        assert!(v.open_purpose("sandbox token", &credentials).is_err());
    }

    #[test]
    fn credentials_sealed_for_one_account_do_not_open_for_another() {
        let v = Vault::from_key_bytes(&[7; 32]);
        let sealed = v.seal_for(5, b"token-abc");
        assert!(matches!(v.open_for(6, &sealed), Err(CryptoError::Decrypt)));
        assert!(matches!(v.open_for(-5, &sealed), Err(CryptoError::Decrypt)));
        // Nor can the version byte be turned back to the legacy format to drop the binding.
        let mut downgraded = sealed.into_bytes();
        downgraded[0] = LEGACY_VERSION;
        let downgraded = Sealed::new(downgraded);
        assert!(matches!(
            v.open_for(6, &downgraded),
            Err(CryptoError::Decrypt)
        ));
    }

    /// `01 ‖ nonce 00..17 ‖ "token-abc" sealed with key [7; 32] and no associated data`, as
    /// picket sealed credentials before they were bound to their account (made with an
    /// independent implementation: Python's `cryptography` and HChaCha20 by hand).
    const LEGACY_BLOB: &str = "01000102030405060708090a0b0c0d0e0f1011121314151617dc78c0e094313ac74676d3b55fbdc5e9b796d5f7294f14949b";

    #[test]
    fn credentials_sealed_in_the_legacy_format_still_open_on_any_row() {
        let v = Vault::from_key_bytes(&[7; 32]);
        let legacy = Sealed::new(hex::decode(LEGACY_BLOB).unwrap());
        assert!(Vault::is_legacy(&legacy));
        assert_eq!(v.open_for(1, &legacy).unwrap(), b"token-abc");
        assert_eq!(v.open_for(42, &legacy).unwrap(), b"token-abc");
        assert!(!Vault::is_legacy(&v.seal_for(1, b"x")));
        let mut altered = legacy.into_bytes();
        *altered.last_mut().unwrap() ^= 1;
        let open = |bytes: Vec<u8>| v.open_for(1, &Sealed::new(bytes));
        assert!(matches!(open(altered), Err(CryptoError::Decrypt)));
        assert!(matches!(open(vec![9; 60]), Err(CryptoError::Decrypt)));
        assert!(matches!(open(vec![2; 3]), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn a_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("picket.db.key");
        let a = Vault::open(None, &path).unwrap();
        let b = Vault::open(None, &path).unwrap();
        assert_eq!(b.open_for(1, &a.seal_for(1, b"x")).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_key_file_sits_beside_the_sqlite_database() {
        assert_eq!(
            key_file_for("sqlite:///var/lib/picket/p.db"),
            PathBuf::from("/var/lib/picket/p.db.key")
        );
        assert_eq!(
            key_file_for("sqlite://picket.db?mode=rwc"),
            PathBuf::from("picket.db.key")
        );
        assert_eq!(key_file_for("postgres://x/y"), PathBuf::from("picket.key"));
    }

    #[test]
    fn a_malformed_configured_key_is_refused() {
        assert!(matches!(
            Vault::from_base64(&Secret::new("short")),
            Err(CryptoError::BadKey)
        ));
    }
}
