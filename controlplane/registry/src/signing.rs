//! Detached ed25519 signatures over a plugin's manifest and module, the
//! key and signature files, and the trust policy.
//!
//! The signed message is the SHA-256 of the domain string, the manifest's
//! length (u64, little-endian), the manifest and the module: the domain
//! keeps the signature from meaning anything elsewhere, and the length
//! fixes where the manifest ends, so bytes cannot move between the two.

use crate::hex;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Separates plugin signatures from any other use of a key.
const DOMAIN: &[u8] = b"memorystreamer-plugin-v1\0";
/// How a public key file starts.
const PUBLIC_PREFIX: &str = "ms-plugin-key-v1 ";
/// How a secret key file starts.
const SECRET_PREFIX: &str = "ms-plugin-secret-v1 ";
/// How a signature file starts.
const SIGNATURE_PREFIX: &str = "ms-plugin-signature-v1 ";
/// Largest signature file read: the real one is 169 bytes.
pub const SIGNATURE_BYTES_MAX: usize = 1024;

/// A key's short name: the first 8 bytes of the public key, in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A public key: what the appliance trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A secret key: what a publisher signs with. Its `Debug` shows only the
/// key id.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(id {})", self.public_key().id())
    }
}

/// Who signed a plugin, as far as the policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// A trusted key, whose signature verified.
    Key(KeyId),
    /// Nobody; accepted because the policy allows unsigned plugins.
    Unsigned,
}

/// Which plugins may run: those signed by one of `keys`, and unsigned ones
/// too when `allow_unsigned` (for development).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// The trusted public keys.
    pub keys: Vec<PublicKey>,
    /// Accept plugins without a signature file.
    pub allow_unsigned: bool,
}

/// A key file or key generation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A secret key given where a public key belongs, or the reverse.
    #[error("this is a {found} key file where a {expected} key file belongs{hint}")]
    WrongKind {
        /// What was expected ("public" or "secret").
        expected: &'static str,
        /// What was found.
        found: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// Not a key file of ours.
    #[error(
        "not a plugin {what} key file: {reason}; the file is one line, \"{prefix}\" followed by 64 hex digits, \
         as key generation writes it"
    )]
    Malformed {
        /// "public" or "secret".
        what: &'static str,
        /// The line's expected start.
        prefix: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// 32 bytes that are not an ed25519 public key.
    #[error(
        "the public key file holds 32 bytes that are not an ed25519 public key; get the file again from its owner"
    )]
    NotAKey,
    /// The OS gave no random bytes for a new key.
    #[error("cannot get random bytes from the operating system for a new key: {0}")]
    Random(getrandom::Error),
}

/// A signature that is missing, malformed, untrusted or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature file, and the policy wants one.
    #[error(
        "the plugin is not signed (no signature file) and unsigned plugins are not allowed: sign it with a \
         trusted key, or allow unsigned plugins (for development only)"
    )]
    Unsigned,
    /// Not a signature file of ours.
    #[error(
        "the signature file is not a plugin signature: {reason}; it is one line, \"{SIGNATURE_PREFIX}\", a 16-digit \
         key id, a space and 128 hex digits: sign the plugin again"
    )]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Signed by a key the policy does not trust.
    #[error(
        "the plugin is signed by key {key_id}, which is not trusted: add that public key to the trusted keys if \
         you trust its owner, or have the plugin signed with a trusted key"
    )]
    Untrusted {
        /// The key named in the signature file.
        key_id: KeyId,
    },
    /// The signature does not match the manifest and module.
    #[error(
        "the signature by key {key_id} does not match manifest.yaml and plugin.wasm: one of the three changed \
         after signing; get an intact copy of the plugin, or sign it again"
    )]
    Mismatch {
        /// The trusted key it claims.
        key_id: KeyId,
    },
}

impl PublicKey {
    /// From the raw 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(bytes).map(PublicKey).map_err(|_| KeyError::NotAKey)
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its key id.
    pub fn id(&self) -> KeyId {
        let mut id = [0; 8];
        id.copy_from_slice(&self.0.as_bytes()[..8]);
        KeyId(id)
    }

    /// Reads a public key file's text.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        if text.starts_with(SECRET_PREFIX) {
            let hint = ": trust the public key file, and keep the secret key off the appliance";
            return Err(KeyError::WrongKind { expected: "public", found: "secret", hint });
        }
        let bytes = key_line(text, PUBLIC_PREFIX, "public")?;
        PublicKey::from_bytes(&bytes)
    }

    /// Its key file's text.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}\n", hex::encode(self.0.as_bytes()))
    }
}

impl SecretKey {
    /// From the raw 32 bytes (the ed25519 seed).
    pub fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(bytes))
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Reads a secret key file's text.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        if text.starts_with(PUBLIC_PREFIX) {
            let hint = ": signing needs the secret key file";
            return Err(KeyError::WrongKind { expected: "secret", found: "public", hint });
        }
        key_line(text, SECRET_PREFIX, "secret").map(|b| SecretKey::from_bytes(&b))
    }

    /// Its key file's text (keep it private: mode 0600, off the appliance).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", hex::encode(&self.0.to_bytes()))
    }
}

/// The single line of a key or signature file, without its line end; what
/// is wrong otherwise.
fn one_line(text: &str) -> Result<&str, String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains(['\n', '\r']) {
        return Err("it has more than one line".into());
    }
    Ok(line)
}

/// The 32 bytes of a key file whose line starts with `prefix`.
fn key_line(text: &str, prefix: &'static str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let malformed = |reason: String| KeyError::Malformed { what, prefix, reason };
    let line = one_line(text).map_err(malformed)?;
    let digits = line.strip_prefix(prefix).ok_or_else(|| malformed(format!("it does not start with {prefix:?}")))?;
    hex::decode::<32>(digits).map_err(malformed)
}

/// A new key pair, from the operating system's random source.
pub fn keygen() -> Result<(SecretKey, PublicKey), KeyError> {
    // An ed25519 secret key is 32 uniformly random bytes (RFC 8032 5.1.5);
    // `SigningKey::generate` does the same through rand_core.
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(KeyError::Random)?;
    let secret = SecretKey::from_bytes(&seed);
    let public = secret.public_key();
    Ok((secret, public))
}

/// The digest a plugin's signature covers.
pub fn signed_digest(manifest: &[u8], module: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((manifest.len() as u64).to_le_bytes());
    h.update(manifest);
    h.update(module);
    h.finalize().into()
}

/// The signature file's text for `manifest` and `module`, by `secret`.
pub fn sign(manifest: &[u8], module: &[u8], secret: &SecretKey) -> String {
    use ed25519_dalek::Signer as _;
    let signature = secret.0.sign(&signed_digest(manifest, module));
    format!("{SIGNATURE_PREFIX}{} {}\n", secret.public_key().id(), hex::encode(&signature.to_bytes()))
}

/// Checks a signature file's text against `manifest` and `module`: the id
/// of the trusted key (one of `keys`) that made it, or why not.
pub fn verify(manifest: &[u8], module: &[u8], signature: &str, keys: &[PublicKey]) -> Result<KeyId, SignatureError> {
    let (key_id, signature) = parse_signature(signature)?;
    let mut candidates = keys.iter().filter(|k| k.id() == key_id).peekable();
    if candidates.peek().is_none() {
        return Err(SignatureError::Untrusted { key_id });
    }
    let digest = signed_digest(manifest, module);
    // Strict verification: no small-order keys, no malleable encodings.
    match candidates.any(|k| k.0.verify_strict(&digest, &signature).is_ok()) {
        true => Ok(key_id),
        false => Err(SignatureError::Mismatch { key_id }),
    }
}

fn parse_signature(text: &str) -> Result<(KeyId, Signature), SignatureError> {
    let malformed = |reason: String| SignatureError::Malformed { reason };
    if text.len() > SIGNATURE_BYTES_MAX {
        return Err(malformed(format!("it is {} bytes, far more than a signature", text.len())));
    }
    let line = one_line(text).map_err(malformed)?;
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| malformed(format!("it does not start with {SIGNATURE_PREFIX:?}")))?;
    let (id, sig) =
        rest.split_once(' ').ok_or_else(|| malformed("the key id and signature are not both there".into()))?;
    let id = hex::decode::<8>(id).map_err(|e| malformed(format!("key id: {e}")))?;
    let sig = hex::decode::<64>(sig).map_err(|e| malformed(format!("signature: {e}")))?;
    Ok((KeyId(id), Signature::from_bytes(&sig)))
}

impl Trust {
    /// Applies the policy to a plugin's files; `signature` is the
    /// signature file's text, `None` when there is none.
    pub fn check(&self, manifest: &[u8], module: &[u8], signature: Option<&str>) -> Result<Signer, SignatureError> {
        match signature {
            Some(s) => verify(manifest, module, s, &self.keys).map(Signer::Key),
            None if self.allow_unsigned => Ok(Signer::Unsigned),
            None => Err(SignatureError::Unsigned),
        }
    }
}
