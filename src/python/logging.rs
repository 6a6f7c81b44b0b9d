//! Rust `log` records -> Python `logging`. Targets map to logger names (`tokenward.jwks.cache`),
//! so everything lands under the `tokenward` logger.

use pyo3::prelude::*;

pub(super) fn install(py: Python<'_>) {
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)
        .map(|l| l.filter(log::LevelFilter::Debug));
    match logger {
        // Another extension in the process may own the `log` facade already; ours then stays quiet.
        Ok(logger) => {
            let _ = logger.install();
        }
        Err(e) => e.print(py),
    }
}
