//! The encryption of a token stored in the shared cache: AES-256-GCM (aws-lc-rs), a fresh
//! random nonce per write, and the Redis key name as associated data, so an entry copied under
//! another key (another client's, another scope's) fails to open instead of being served.
//!
//! Layout of a sealed entry: one version byte, the 12-byte nonce, the ciphertext and its tag.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use zeroize::Zeroizing;

const VERSION: u8 = 1;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// The two base64 alphabets a key may come in (`openssl rand -base64 32` gives the first).
const ENGINES: [GeneralPurpose; 2] = [
    GeneralPurpose::new(&alphabet::STANDARD, LENIENT),
    GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT),
];

/// The key of the shared cache's entries. Its Debug shows nothing of it.
pub(crate) struct SealKey(LessSafeKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<hidden>)")
    }
}

impl SealKey {
    /// A key from 32 bytes in base64 (standard or URL-safe alphabet, padded or not); None for
    /// anything else.
    pub(crate) fn from_base64(text: &str) -> Option<SealKey> {
        let bytes = ENGINES
            .iter()
            .find_map(|engine| engine.decode(text.trim()).ok())
            .map(Zeroizing::new)?;
        if bytes.len() != 32 {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(SealKey(LessSafeKey::new(key)))
    }

    /// `plaintext` encrypted and bound to `aad` (the entry's key name).
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        let sealing = self.0.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        );
        sealing.ok()?;
        sealed.extend_from_slice(&body);
        Some(sealed)
    }

    /// The plaintext of an entry sealed with this key for `aad`; None when it was sealed with
    /// another key, for another name, or altered.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = Zeroizing::new(body.to_vec());
        let length = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(length);
        Some(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    fn key(byte: u8) -> SealKey {
        SealKey::from_base64(&STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn opens_only_with_its_key_and_its_name() {
        let k = key(7);
        let sealed = k.seal(b"the-token", b"tokenward:token:a").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"the-token"));
        assert_eq!(
            k.open(&sealed, b"tokenward:token:a").unwrap().as_slice(),
            b"the-token"
        );
        assert!(
            k.open(&sealed, b"tokenward:token:b").is_none(),
            "moved entry"
        );
        assert!(
            key(8).open(&sealed, b"tokenward:token:a").is_none(),
            "other key"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(k.open(&altered, b"tokenward:token:a").is_none());
        assert!(k.open(&sealed[..10], b"tokenward:token:a").is_none());
        assert!(k.open(b"", b"tokenward:token:a").is_none());
    }

    #[test]
    fn a_nonce_per_write() {
        let k = key(1);
        assert_ne!(k.seal(b"t", b"n").unwrap(), k.seal(b"t", b"n").unwrap());
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(SealKey::from_base64(&URL_SAFE.encode([0xfb; 32])).is_some());
        assert!(SealKey::from_base64(STANDARD.encode([1; 32]).trim_end_matches('=')).is_some());
        assert!(SealKey::from_base64(&STANDARD.encode([1; 16])).is_none());
        assert!(SealKey::from_base64("not base64 at all!").is_none());
        assert!(SealKey::from_base64("").is_none());
        assert_eq!(format!("{:?}", key(3)), "SealKey(<hidden>)");
    }
}
