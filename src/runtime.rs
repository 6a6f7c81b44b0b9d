//! One shared tokio runtime for all network work, created lazily and recreated after fork.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::fork::ForkLocal;

static RUNTIME: ForkLocal<Arc<Runtime>> = ForkLocal::new(build);

fn build() -> Arc<Runtime> {
    Arc::new(
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokenward-io")
            .enable_all()
            .build()
            .expect("cannot start the tokenward I/O runtime"),
    )
}

pub(crate) fn handle() -> Handle {
    RUNTIME.get().handle().clone()
}

/// Runs a future to completion from synchronous code (a Python thread or a plain Rust thread).
/// Called from inside a runtime (which would panic in tokio), the work moves to a scoped thread.
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let handle = handle();
    if Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(|| handle.block_on(fut)).join())
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    } else {
        handle.block_on(fut)
    }
}

/// Starts background work on the shared runtime.
pub(crate) fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    handle().spawn(fut);
}
