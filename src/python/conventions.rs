//! The URL shapes of a Keycloak realm, for the Python code that needs them (the SmartEM drop-in's
//! token URL, the DevIdP's routes), so they are spelled once, in the core.

use std::collections::HashMap;

use pyo3::prelude::*;

/// The issuer URL of `realm` on the Keycloak at `url`.
#[pyfunction]
pub(super) fn realm_issuer(url: &str, realm: &str) -> String {
    crate::keycloak::realm_issuer(url, realm)
}

/// The paths below an issuer that a Keycloak realm serves: `discovery`, `jwks`, `token`.
#[pyfunction]
pub(super) fn issuer_paths() -> HashMap<&'static str, &'static str> {
    crate::discovery::issuer_paths().into_iter().collect()
}
