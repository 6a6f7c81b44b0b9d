//! PyO3 wrappers: argument conversion, exceptions, GIL release and async bridges. No logic of
//! their own; everything they do is a call into the core.

mod async_bridge;
mod conventions;
mod convert;
mod errors;
mod exchange;
mod from_env;
mod jwks;
mod logging;
mod signing;
mod token_client;
mod transport;
mod verifier;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install(m.py());
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<verifier::PyVerifier>()?;
    m.add_class::<signing::PySigningKey>()?;
    m.add_function(wrap_pyfunction!(verifier::_advance_clock, m)?)?;
    m.add_function(wrap_pyfunction!(verifier::_reset_clock, m)?)?;
    m.add_function(wrap_pyfunction!(logging::_log_burst, m)?)?;
    m.add_class::<logging::PyLogThrottle>()?;
    m.add_class::<token_client::PyTokenClient>()?;
    m.add_function(wrap_pyfunction!(conventions::realm_issuer, m)?)?;
    m.add_function(wrap_pyfunction!(conventions::issuer_paths, m)?)?;
    m.add_function(wrap_pyfunction!(jwks::_review_jwks, m)?)?;
    Ok(())
}
