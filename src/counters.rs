//! The one shape of the figures `Verifier.stats()` and `TokenClient.stats()` report: named
//! counters, bumped with relaxed atomics (they are figures, not locks), read as a list of
//! `(name, value)` pairs whose names are the field names.

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonically increasing figure.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// The value now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A struct of `Counter` fields with a `snapshot()` listing them by name, so a new figure is
/// added in one place and cannot be left out of what the bindings report.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $( $(#[$field_meta])* pub $field: $crate::counters::Counter, )*
        }

        impl $name {
            /// Every counter with its name, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($field), self.$field.get()) ),*]
            }
        }
    };
}

pub(crate) use counters;
