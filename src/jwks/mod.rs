//! Key sets: JWKs parsed into verifying keys, and the cache with its fetch policy.

mod cache;
mod fetch;
mod key;

pub use cache::KeySetHealth;
pub(crate) use cache::{JwksCache, JwksPolicy, Lookup, Ticket, MAX_KEY_WAIT};
pub(crate) use fetch::KeySetLocation;
pub use key::{parse_jwks, review_jwks, KeySet, KeyVerdict};
