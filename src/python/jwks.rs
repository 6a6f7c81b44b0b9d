//! The verifier's verdict on each key of a JWKS document, for `tokenward jwks`: the reasons come
//! from the core's key parser, so the CLI never guesses what the verifier would skip.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// One entry's verdict: its index, its kid, why it is skipped (None: used).
type Verdict = (usize, Option<String>, Option<String>);

/// `[(index, kid or None, skip reason or None), ...]` for the JWKS document `body`; ValueError
/// when the document itself is unusable (not JSON, no `keys` array).
#[pyfunction]
pub(super) fn _review_jwks(body: &[u8]) -> PyResult<Vec<Verdict>> {
    let verdicts = crate::jwks::review_jwks(body).map_err(PyValueError::new_err)?;
    Ok(verdicts
        .into_iter()
        .map(|v| (v.index, v.kid, v.skipped))
        .collect())
}
