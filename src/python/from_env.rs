//! What `Verifier.from_env` and `TokenClient.from_env` share: the environment, and the way a
//! core object built in Rust becomes an instance of the caller's (Python) class.
//!
//! `from_env` is a native classmethod that reads the process environment with `std::env::var`,
//! applies the caller's keyword arguments (converted exactly as the constructor converts them)
//! and builds the core object, all in Rust: no setting, and no secret, ever becomes a Python
//! value on the way. The result must still be an instance of `cls` (`tokenward.Verifier` is a
//! Python subclass that adds `verify_async`), and PyO3 has no public way to wrap a Rust value in
//! an instance of a subclass other than the class's own `__new__`. So the built object is handed
//! to `cls(...)` inside a [`Prepared`]: an opaque handle (its repr shows nothing) that the
//! constructor accepts in place of its one required argument and empties on the spot.
//!
//! Python's `os.environ[name] = ...`, `del os.environ[name]` and `monkeypatch.setenv` call
//! `putenv`/`unsetenv`, so the C environment read here is the one Python code sees.

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

/// A variable of the process environment (None when unset or not Unicode).
pub(super) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A core object on its way into a Python instance; taken once.
#[pyclass(frozen, name = "_Prepared", module = "tokenward._native")]
pub(super) struct Prepared(Mutex<Option<Box<dyn std::any::Any + Send>>>);

impl Prepared {
    pub(super) fn new<T: Send + 'static>(core: T) -> Self {
        Prepared(Mutex::new(Some(Box::new(core))))
    }

    /// The core object, once, when it is a `T`.
    pub(super) fn take<T: 'static>(&self) -> PyResult<T> {
        let taken = self.0.lock().ok().and_then(|mut slot| slot.take());
        match taken.map(|core| core.downcast::<T>()) {
            Some(Ok(core)) => Ok(*core),
            _ => Err(PyRuntimeError::new_err("this prepared object is used up")),
        }
    }
}

#[pymethods]
impl Prepared {
    fn __repr__(&self) -> &'static str {
        "<tokenward._native._Prepared>"
    }
}

/// A constructor argument: the value a caller passes, or a [`Prepared`] from `from_env`.
pub(super) enum Given<T> {
    Value(T),
    Prepared(Py<Prepared>),
}

impl<'a, 'py, T: FromPyObject<'a, 'py>> FromPyObject<'a, 'py> for Given<T> {
    type Error = T::Error;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> Result<Self, Self::Error> {
        if let Ok(prepared) = obj.cast::<Prepared>() {
            return Ok(Given::Prepared(prepared.to_owned().unbind()));
        }
        // Anything else converts as a plain `T` would, with `T`'s error.
        T::extract(obj).map(Given::Value)
    }
}

/// The error for a keyword `from_env` does not take, worded as Python words it.
pub(super) fn unexpected(class: &str, name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{class}.from_env() got an unexpected keyword argument '{name}'"
    ))
}
