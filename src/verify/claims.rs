//! What a verify hands back: the claims, shared by the verified-token cache and its callers.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// A verified token's claims, shared by the verified-token cache and every caller it serves.
pub type Claims = Arc<VerifiedClaims>;

/// The claims (a JSON object; derefs to it), plus one slot where a language binding may keep
/// its own converted form, built once per cached token instead of once per call.
pub struct VerifiedClaims {
    map: Map<String, Value>,
    converted: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl VerifiedClaims {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        VerifiedClaims {
            map,
            converted: OnceLock::new(),
        }
    }

    /// The claims as a JSON object.
    pub fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The converted form a binding stored, if any (and if it is a `T`).
    pub fn converted<T: Any>(&self) -> Option<&T> {
        self.converted.get()?.downcast_ref::<T>()
    }

    /// Stores a converted form unless one is there already; returns the one kept. Never
    /// blocks: two threads converting at once both succeed, and one result is kept.
    pub fn set_converted<T: Any + Send + Sync>(&self, value: T) -> Option<&T> {
        let _ = self.converted.set(Box::new(value));
        self.converted::<T>()
    }
}

impl std::ops::Deref for VerifiedClaims {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}
