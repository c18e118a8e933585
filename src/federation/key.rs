//! The host key: one Ed25519 key per picket host, which signs the host's checkpoints, and
//! the verifier keys of peers, pinned in the settings.
//!
//! Like the credentials key it never sits in the database: it comes from `host_key` /
//! `PICKET_HOST_KEY` (base64 of the 32-byte Ed25519 seed) or from a key file created on
//! first use beside the database (`<database>.host`), readable only by its owner.
//!
//! Notes are signed as the C2SP signed-note format says
//! (<https://c2sp.org/signed-note>): the signature line is
//! `— <key name> base64(key ID ‖ Ed25519 signature)` with key ID = the first four bytes of
//! SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key). A verifier key is written as Go's
//! `golang.org/x/mod/sumdb/note` writes them, `<name>+<key ID in 8 hex digits>+<base64(0x01 ‖
//! public key)>`: one line that `picket host key` prints and a peer pastes into `[[peers]]`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::domain::Secret;

/// The signature type byte C2SP assigns to Ed25519.
const ED25519: u8 = 0x01;

/// Why a key could not be read or a note not verified.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The configured host key is not base64 of 32 bytes.
    #[error(
        "PICKET_HOST_KEY must be base64 of a 32-byte Ed25519 seed (e.g. `openssl rand -base64 32`)"
    )]
    BadKey,
    /// The key file could not be read or created.
    #[error("host key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A peer's key is not written as `picket host key` prints it.
    #[error(
        "{0:?} is not a host key as `picket host key` prints it (name+8 hex digits+base64 key)"
    )]
    BadVerifierKey(String),
}

/// This host's signing key. `Debug` never shows it.
pub struct HostKey {
    signing: SigningKey,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostKey([redacted])")
    }
}

impl HostKey {
    pub fn from_seed(seed: [u8; 32]) -> HostKey {
        HostKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Base64 of the 32-byte seed, as `PICKET_HOST_KEY` and the key file hold it.
    pub fn from_base64(text: &str) -> Result<HostKey, KeyError> {
        let bytes = B64.decode(text.trim()).map_err(|_| KeyError::BadKey)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadKey)?;
        Ok(HostKey::from_seed(seed))
    }

    /// The configured key, else the key file at `path`, created (mode 0600) if missing,
    /// with the same care as the credentials key.
    pub fn open(configured: Option<&Secret>, path: &Path) -> Result<HostKey, KeyError> {
        if let Some(k) = configured {
            return HostKey::from_base64(k.expose());
        }
        let io = |source| KeyError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => HostKey::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                match crate::crypto::write_private(path, B64.encode(seed).as_bytes()) {
                    Ok(()) => Ok(HostKey::from_seed(seed)),
                    // Another process made it first: theirs is the host's key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        HostKey::from_base64(&std::fs::read_to_string(path).map_err(io)?)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The verifier key peers pin, named after this host's `public_url`.
    pub fn verifier(&self, public_url: &str) -> VerifierKey {
        VerifierKey::new(key_name(public_url), self.signing.verifying_key())
    }

    /// `body` (ending in a newline) as a signed note: the body, a blank line, one
    /// signature line.
    pub fn sign_note(&self, public_url: &str, body: &str) -> String {
        let verifier = self.verifier(public_url);
        let signature = self.signing.sign(body.as_bytes());
        let mut blob = verifier.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n— {} {}\n", verifier.name, B64.encode(blob))
    }
}

/// The key name of a host: its public address without the scheme and final slash (a
/// schema-less URL, as C2SP recommends), e.g. `strike.example.org`.
pub fn key_name(public_url: &str) -> String {
    let url = public_url.trim().trim_end_matches('/');
    let bare = url.split_once("://").map_or(url, |(_, rest)| rest);
    // Key names may hold neither spaces nor '+'.
    bare.replace(|c: char| c.is_whitespace() || c == '+', "_")
}

/// Where the host key file lives for a database URL: beside the credentials key.
pub fn key_file_for(database_url: &str) -> PathBuf {
    let key = crate::crypto::key_file_for(database_url);
    let name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    key.with_file_name(format!("{}.host", name.trim_end_matches(".key")))
}

/// A peer's public key as pinned in `[[peers]] key`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    public: VerifyingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut encoded = vec![ED25519];
        encoded.extend_from_slice(self.public.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(encoded))
    }
}

/// Why a signed note was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a signed note: no blank line before signature lines, or a malformed line.
    #[error("not a signed note: {0}")]
    Malformed(&'static str),
    /// No signature line by the pinned key.
    #[error("not signed by the pinned key")]
    NotSignedByKey,
    /// A signature line by the pinned key that does not verify.
    #[error("the signature by the pinned key does not verify")]
    BadSignature,
}

impl VerifierKey {
    fn new(name: String, public: VerifyingKey) -> VerifierKey {
        let id = key_id(&name, &public);
        VerifierKey { name, id, public }
    }

    /// `name+hash+base64key`, as [`fmt::Display`] writes it; the hash must match.
    pub fn parse(text: &str) -> Result<VerifierKey, KeyError> {
        let bad = || KeyError::BadVerifierKey(text.chars().take(200).collect());
        let text = text.trim();
        let (name, rest) = text.split_once('+').ok_or_else(bad)?;
        let (id, key) = rest.split_once('+').ok_or_else(bad)?;
        if name.is_empty() || id.len() != 8 {
            return Err(bad());
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| bad())?;
        let bytes = B64.decode(key).map_err(|_| bad())?;
        let (&kind, public) = bytes.split_first().ok_or_else(bad)?;
        let public: [u8; 32] = public.try_into().map_err(|_| bad())?;
        let public = VerifyingKey::from_bytes(&public).map_err(|_| bad())?;
        if kind != ED25519 || key_id(name, &public) != id {
            return Err(bad());
        }
        Ok(VerifierKey::new(name.to_string(), public))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body of `note` if a signature line of this key verifies over it. Signatures of
    /// other keys are ignored, as C2SP says.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::Malformed("no signature lines"));
        }
        let mut found = false;
        for line in signatures.lines() {
            let (name, blob) = line
                .strip_prefix("— ")
                .and_then(|l| l.rsplit_once(' '))
                .ok_or(NoteError::Malformed("a signature line is malformed"))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.id.to_be_bytes() {
                continue;
            }
            found = true;
            let signature =
                Signature::from_slice(&blob[4..]).map_err(|_| NoteError::BadSignature)?;
            self.public
                .verify(body.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature)?;
        }
        if found {
            Ok(body)
        } else {
            Err(NoteError::NotSignedByKey)
        }
    }
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519])
        .chain_update(public.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_signed_by_a_host_opens_with_its_printed_key_only() {
        let host = HostKey::from_seed([1; 32]);
        let note = host.sign_note("https://a.example/", "hello\nworld\n");
        assert!(note.starts_with("hello\nworld\n\n— a.example "), "{note}");
        let printed = host.verifier("https://a.example/").to_string();
        let key = VerifierKey::parse(&printed).unwrap();
        assert_eq!(key.open(&note), Ok("hello\nworld\n"));
        let other = VerifierKey::parse(
            &HostKey::from_seed([2; 32])
                .verifier("https://a.example/")
                .to_string(),
        )
        .unwrap();
        assert_eq!(other.open(&note), Err(NoteError::NotSignedByKey));
        let forged = note.replace("world", "w0rld");
        assert_eq!(key.open(&forged), Err(NoteError::BadSignature));
    }

    #[test]
    fn a_verifier_key_with_a_wrong_hash_is_refused() {
        let printed = HostKey::from_seed([1; 32])
            .verifier("https://a.example")
            .to_string();
        let (name, rest) = printed.split_once('+').unwrap();
        assert!(VerifierKey::parse(&format!("{name}x+{rest}")).is_err());
        assert!(VerifierKey::parse("a.example").is_err());
        // Base64 may hold the '+' that separates the parts: only the first two split.
        let plus = HostKey::from_seed([8; 32])
            .verifier("https://a.example")
            .to_string();
        assert_eq!(plus.matches('+').count(), 3, "{plus}");
        assert_eq!(VerifierKey::parse(&plus).unwrap().to_string(), plus);
    }

    #[test]
    fn the_host_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("p.db").display());
        let path = key_file_for(&db);
        assert_eq!(path, dir.path().join("p.db.host"));
        let first = HostKey::open(None, &path).unwrap();
        let second = HostKey::open(None, &path).unwrap();
        assert_eq!(
            first.verifier("https://h").to_string(),
            second.verifier("https://h").to_string()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
