//! The transport settings shared by `Verifier` and `TokenClient`: `headers=` from a mapping.

use pyo3::prelude::*;
use pyo3::types::PyMapping;

use crate::error::Error;

/// `headers` as (name, value) pairs, in the mapping's order; None: no extra headers.
pub(super) fn headers(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let invalid = || Error::config("headers", "must be a mapping of str to str");
    let mapping = value.cast::<PyMapping>().map_err(|_| invalid())?;
    let mut out = Vec::new();
    for item in mapping.items()?.iter() {
        let pair: (String, String) = item.extract().map_err(|_| invalid())?;
        out.push(pair);
    }
    Ok(out)
}
