//! The arguments of `TokenClient.exchange`, converted into the core's [`Exchange`].

use pyo3::prelude::*;

use crate::error::Error;
use crate::token::Exchange;

/// `audience` as one string or a sequence of them (each becomes its own `audience` parameter).
fn audiences(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(one) = value.extract::<String>() {
        return Ok(vec![one]);
    }
    value
        .extract::<Vec<String>>()
        .map_err(|_| Error::config("audience", "must be a string or a sequence of strings").into())
}

pub(super) fn request<'a>(
    subject_token: &'a str,
    audience: Option<&Bound<'_, PyAny>>,
    scope: Option<&Bound<'_, PyAny>>,
    requested_token_type: Option<String>,
) -> PyResult<Exchange<'a>> {
    Ok(Exchange::new(
        subject_token,
        audiences(audience)?,
        super::token_client::scope_text(scope)?,
        requested_token_type,
    )?)
}
