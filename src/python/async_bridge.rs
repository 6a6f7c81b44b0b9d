//! pyo3-async-runtimes over our own runtime, so Python awaitables run on the one fork-safe
//! tokio runtime of `crate::runtime` rather than a second, fork-unsafe one.

use std::future::Future;
use std::pin::Pin;

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{self, ContextExt, JoinError, Runtime};
use pyo3_async_runtimes::TaskLocals;
use tokio::task::JoinHandle;

pub(super) struct SharedRuntime;

pub(super) struct Joined(tokio::task::JoinError);

impl JoinError for Joined {
    fn is_panic(&self) -> bool {
        self.0.is_panic()
    }

    fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        self.0.into_panic()
    }
}

pub(super) struct Handle(JoinHandle<()>);

impl Future for Handle {
    type Output = Result<(), Joined>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(Joined)
    }
}

impl Runtime for SharedRuntime {
    type JoinError = Joined;
    type JoinHandle = Handle;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Handle(crate::runtime::handle().spawn(fut))
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        Handle(crate::runtime::handle().spawn_blocking(f))
    }
}

tokio::task_local! {
    static LOCALS: TaskLocals;
}

impl ContextExt for SharedRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        Box::pin(LOCALS.scope(locals, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        LOCALS.try_with(|l| l.clone()).ok()
    }
}

/// A Python awaitable for a Rust future, run on the shared runtime.
pub(super) fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    generic::future_into_py::<SharedRuntime, F, T>(py, fut)
}
