//! Pseudonymisation of personal references with keyed HMAC-SHA256.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::SchemaError;

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The key used by `permitflow demo` and tests; never use it for real data.
pub const DEVELOPMENT_KEY: &str = "permitflow-development-key-not-for-production";

/// Replaces a personal reference by the hex HMAC-SHA256 of it under a secret key.
///
/// The same reference under the same key always gives the same pseudonym, so
/// joins and distinct counts still work; without the key the reference cannot
/// be recovered or recomputed.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
    development: bool,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymiser").field("development", &self.development).finish_non_exhaustive()
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with a secret key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(key: &[u8]) -> Result<Self, SchemaError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(SchemaError::WeakKey { len: key.len(), min: MIN_KEY_BYTES });
        }
        Ok(Pseudonymiser { mac: Self::keyed(key), development: key == DEVELOPMENT_KEY.as_bytes() })
    }

    /// The pseudonymiser of the public [`DEVELOPMENT_KEY`] (demo and tests only).
    pub fn development() -> Self {
        Pseudonymiser { mac: Self::keyed(DEVELOPMENT_KEY.as_bytes()), development: true }
    }

    fn keyed(key: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// True when this is the public development key.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The 64-character lower-case hex pseudonym of `value`, written into `out`.
    pub fn pseudonymise<'b>(&self, value: &str, out: &'b mut [u8; 64]) -> &'b str {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        // Cannot fail: 32 bytes encode to exactly 64 hex characters.
        let _ = hex::encode_to_slice(digest, out);
        std::str::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_reference_same_pseudonym_other_key_other_pseudonym() {
        let a = Pseudonymiser::new(b"0123456789abcdef-key-a").expect("key");
        let b = Pseudonymiser::new(b"0123456789abcdef-key-b").expect("key");
        let (mut x, mut y, mut z) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        let px = a.pseudonymise("P-0001", &mut x).to_string();
        assert_eq!(px, a.pseudonymise("P-0001", &mut y));
        assert_ne!(px, b.pseudonymise("P-0001", &mut z));
        assert!(!px.contains("P-0001"));
    }

    #[test]
    fn matches_rfc4231_test_case_2() {
        // RFC 4231 test case 2 uses the short key "Jefe"; build it directly to check the HMAC wiring.
        let p = Pseudonymiser { mac: Pseudonymiser::keyed(b"Jefe"), development: false };
        let mut out = [0u8; 64];
        assert_eq!(
            p.pseudonymise("what do ya want for nothing?", &mut out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn short_key_is_refused() {
        assert!(matches!(Pseudonymiser::new(b"short"), Err(SchemaError::WeakKey { len: 5, .. })));
    }
}
