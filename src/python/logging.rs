//! Rust `log` records -> Python `logging`. Targets map to logger names (`tokenward.jwks.cache`),
//! so everything lands under the `tokenward` logger; records of other crates (reqwest, hyper,
//! rustls, rustls_platform_verifier...) are dropped here: what matters of them reaches the
//! caller in an error's text.
//!
//! The Python loggers are cached, their levels are not: a level set at any time takes effect
//! at the next record. That costs a GIL acquisition and one `isEnabledFor` call per record that
//! passes the Rust-side filter (Debug and up; docs/benchmarks.md, "Logging"), paid only where
//! the core logs (fetches, refreshes, failures), never per verify.

use log::LevelFilter;
use pyo3::prelude::*;

pub(super) fn install(py: Python<'_>) {
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers).map(|l| {
        l.filter(LevelFilter::Off)
            .filter_target("tokenward".to_owned(), LevelFilter::Debug)
    });
    match logger {
        // Another extension in the process may own the `log` facade already; ours then stays quiet.
        Ok(logger) => {
            let _ = logger.install();
        }
        Err(e) => e.print(py),
    }
}

/// Emits `count` records at `level` from target `tokenward.python.logging` (tests and
/// benchmarks of the bridge only).
#[pyfunction]
pub(super) fn _log_burst(level: &str, count: u64) -> PyResult<()> {
    let level: log::Level = level
        .parse()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("not a log level"))?;
    for i in 0..count {
        log::log!(level, "log burst record {i}");
    }
    Ok(())
}

/// `crate::throttle::LogThrottle` for the Python side's repeated warnings.
#[pyclass(frozen, name = "_LogThrottle", module = "tokenward._native")]
pub(super) struct PyLogThrottle(crate::throttle::LogThrottle);

#[pymethods]
impl PyLogThrottle {
    #[new]
    #[pyo3(signature = (interval = 10.0))]
    fn new(interval: f64) -> PyResult<Self> {
        let interval = std::time::Duration::try_from_secs_f64(interval)
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("interval must be >= 0"))?;
        Ok(PyLogThrottle(crate::throttle::LogThrottle::new(interval)))
    }

    /// The lines left out since the last one when a line may be written now, else None.
    fn admit(&self) -> Option<u64> {
        self.0.admit()
    }

    /// " (N more like it since the last line)" for a count, "" for 0.
    #[staticmethod]
    fn suffix(suppressed: u64) -> String {
        crate::throttle::suffix(suppressed)
    }
}
