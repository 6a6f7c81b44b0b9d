//! tokenward: verify OIDC bearer tokens against a realm's JWKS, and fetch client-credentials
//! tokens. The core (everything but `python`) knows nothing of Python.
//!
//! The public surface is what a Rust caller (the benches, a future crate user) needs: the
//! [`Verifier`], the [`token::TokenClient`], [`SigningKey`], the errors and the SmartEM
//! conventions of [`keycloak`]. Everything else is `pub(crate)`; the bindings in `python` are
//! inside the crate and use it freely.

mod counters;
mod single_flight;

pub(crate) mod clock;
pub(crate) mod discovery;
mod error;
pub(crate) mod fork;
pub(crate) mod http;
pub mod jwks;
pub mod keycloak;
pub(crate) mod revoke;
pub(crate) mod runtime;
pub mod sign;
pub(crate) mod throttle;
pub mod token;
mod verify;

#[cfg(test)]
mod testutil;

// The entry points of the fuzz targets in `fuzz/`; also compiled for `cargo test`, which runs
// the seed corpus through them.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use counters::Counter;
pub use error::{Code, Error, Result, TokenRequestFailure, Transport};
pub use revoke::Revocation;
pub use sign::SigningKey;
pub use verify::{
    Claims, Lookup, RevocationsHealth, Uncached, VerifiedClaims, Verifier, VerifierConfig,
    VerifierStats,
};

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _native(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    python::register(m)
}
