//! tokenward: verify OIDC bearer tokens against a realm's JWKS, and fetch client-credentials
//! tokens. The core (everything but `python`) knows nothing of Python.

pub mod clock;
pub mod error;
pub mod fork;
pub mod http;
pub mod jwks;
pub mod runtime;
pub mod sign;
pub mod stats;
pub mod token;
pub mod verify;

#[cfg(test)]
mod testutil;

pub use error::{Code, Error, Result};
pub use sign::SigningKey;
pub use verify::{Verifier, VerifierConfig};

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _native(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    python::register(m)
}
