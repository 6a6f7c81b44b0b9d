//! serde_json values -> fresh Python objects (claims are handed out as new dicts every call).
//!
//! Two things keep this cheap on the hot paths:
//! - claim names are interned: the same few names ("exp", "sub", ...) come in every token, so
//!   their Python strings (hash included) are made once and shared;
//! - claims served from the verified-token cache keep a converted template with the cache entry.
//!   Strings, numbers, booleans and None are immutable and shared with every caller; dicts and
//!   lists are copied for each call, so a caller that mutates its claims changes nobody else's.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::IntoPyObjectExt;
use serde_json::{Map, Value};

use crate::verify::Claims;

/// Claim names longer than this are not interned.
const MAX_INTERNED_LEN: usize = 64;
/// At most this many names are interned (tokens are verified before their claims are
/// converted, so only an issuer chooses names; the bound is a guard all the same).
const MAX_INTERNED: usize = 1024;

static NAMES: LazyLock<Mutex<HashMap<Box<str>, Py<PyString>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A claim name as a Python string, shared when it is a known one.
fn name<'py>(py: Python<'py>, key: &str) -> Bound<'py, PyString> {
    if key.len() > MAX_INTERNED_LEN {
        return PyString::new(py, key);
    }
    // The lock is never held while Python code could run (making a string may run the GC).
    if let Some(known) = NAMES
        .lock()
        .ok()
        .and_then(|m| m.get(key).map(|s| s.clone_ref(py)))
    {
        return known.into_bound(py);
    }
    let made = PyString::intern(py, key);
    if let Ok(mut names) = NAMES.lock() {
        if names.len() < MAX_INTERNED {
            names.insert(key.into(), made.clone().unbind());
        }
    }
    made
}

pub(super) fn value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)
            }
        }
        Value::String(s) => s.as_str().into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(map) => Ok(dict(py, map)?.into_any()),
    }
}

pub(super) fn dict<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (k, v) in map {
        out.set_item(name(py, k), value(py, v)?)?;
    }
    Ok(out)
}

/// A converted JSON container and where, inside it, the mutable containers are: a fresh copy
/// is the container copied (sharing its immutable members) with those replaced by fresh copies.
enum Node {
    Dict(Py<PyDict>, Vec<(Py<PyString>, Node)>),
    List(Py<PyList>, Vec<(usize, Node)>),
}

impl Node {
    fn dict<'py>(
        py: Python<'py>,
        map: &Map<String, Value>,
    ) -> PyResult<(Bound<'py, PyDict>, Node)> {
        let out = PyDict::new(py);
        let mut children = Vec::new();
        for (k, v) in map {
            let key = name(py, k);
            let (item, node) = Self::build(py, v)?;
            out.set_item(&key, item)?;
            if let Some(node) = node {
                children.push((key.unbind(), node));
            }
        }
        let template = out.clone().unbind();
        Ok((out, Node::Dict(template, children)))
    }

    /// The value converted, and `Some` node for a container (`None` for an immutable value).
    fn build<'py>(py: Python<'py>, v: &Value) -> PyResult<(Bound<'py, PyAny>, Option<Node>)> {
        match v {
            Value::Object(map) => {
                let (out, node) = Self::dict(py, map)?;
                Ok((out.into_any(), Some(node)))
            }
            Value::Array(items) => {
                let out = PyList::empty(py);
                let mut children = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    let (item, node) = Self::build(py, v)?;
                    out.append(item)?;
                    if let Some(node) = node {
                        children.push((i, node));
                    }
                }
                let template = out.clone().unbind();
                Ok((out.into_any(), Some(Node::List(template, children))))
            }
            leaf => Ok((value(py, leaf)?, None)),
        }
    }

    fn fresh<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Node::Dict(template, children) => {
                let out = template.bind(py).copy()?;
                for (key, child) in children {
                    out.set_item(key.bind(py), child.fresh(py)?)?;
                }
                Ok(out.into_any())
            }
            Node::List(template, children) => {
                let template = template.bind(py);
                let out = template.get_slice(0, template.len());
                for (i, child) in children {
                    out.set_item(*i, child.fresh(py)?)?;
                }
                Ok(out.into_any())
            }
        }
    }
}

/// What a cache entry keeps: the template of its claims dict, made on the second conversion
/// (a token verified once and never again costs no more than a direct conversion).
#[derive(Default)]
struct Template(OnceLock<Node>);

/// The claims as a fresh dict.
pub(super) fn claims<'py>(py: Python<'py>, claims: &Claims) -> PyResult<Bound<'py, PyDict>> {
    // Claims nobody else holds (the cache is off, or did not keep them) are converted directly.
    if Arc::strong_count(claims) == 1 {
        return dict(py, claims.map());
    }
    let Some(template) = claims.converted::<Template>() else {
        // First conversion of a cached token: direct, and mark it seen. (Setting never blocks;
        // should another thread set it first, either marker serves.)
        claims.set_converted(Template::default());
        return dict(py, claims.map());
    };
    let node = match template.0.get() {
        Some(node) => node,
        None => {
            let (out, node) = Node::dict(py, claims.map())?;
            // Another thread may have stored its template meanwhile: this one is then dropped,
            // and the dict built for it (now referenced by nothing else) goes to this caller.
            if template.0.set(node).is_err() {
                return Ok(out);
            }
            template.0.get().expect("just set")
        }
    };
    Ok(node.fresh(py)?.cast_into::<PyDict>()?)
}

/// Claims crossing an async bridge; turned into a dict once back with the GIL.
pub(super) struct ClaimsObject(pub Claims);

impl<'py> IntoPyObject<'py> for ClaimsObject {
    type Target = PyDict;
    type Output = Bound<'py, PyDict>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        claims(py, &self.0)
    }
}
