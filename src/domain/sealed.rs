//! Bytes sealed by the vault (`crypto`): an account's credentials as the store keeps them,
//! or a value sealed for a purpose. One type for them, so their `Debug` (length only) is
//! written once and no row or log line ever prints the ciphertext.

use std::fmt;

/// Ciphertext from [`Vault`](crate::crypto::Vault). Its `Debug` shows only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Sealed(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Sealed {
    fn from(bytes: Vec<u8>) -> Self {
        Sealed(bytes)
    }
}

impl AsRef<[u8]> for Sealed {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_show_only_their_length_in_debug_output() {
        let s = Sealed::new(b"ciphertext".to_vec());
        assert_eq!(format!("{s:?}"), "Sealed(<10 bytes>)");
        assert_eq!(s.as_bytes(), b"ciphertext");
    }
}
