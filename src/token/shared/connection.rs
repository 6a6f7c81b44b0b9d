//! One Redis connection per process for the shared cache. A child process after `fork()` must
//! not use its parent's: that connection's I/O task lived on the parent's runtime, which the
//! child does not have (`crate::runtime` builds it a new one), so the slot is a [`ForkLocal`]
//! and each process connects on its first use.
//!
//! The connection is redis's `ConnectionManager`, every command bounded by the timeouts below,
//! so a Redis that is down or black-holed costs a fetch a short wait, never a hang. After a
//! failure the connection is dropped ([`Connection::reset`]): a manager answers its next
//! command with the failure it last saw, and a fetch after Redis came back must not.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use crate::fork::ForkLocal;

/// Connecting to Redis (TCP and, for rediss://, TLS) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// One command may wait this long for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Reconnection attempts within one command, before it fails and the process fetches alone.
const RECONNECT_RETRIES: usize = 1;

type Slot = Arc<Mutex<Option<ConnectionManager>>>;

pub(crate) struct Connection {
    client: Client,
    slot: ForkLocal<Slot>,
}

impl Connection {
    pub(crate) fn new(client: Client) -> Self {
        Connection {
            client,
            slot: ForkLocal::new(|| Arc::new(Mutex::new(None))),
        }
    }

    /// This process's connection, and whether it is new (never used yet): made (without I/O:
    /// it connects on its first command) on first use here or after a `reset`. Call from the
    /// shared runtime.
    pub(crate) fn get(&self) -> RedisResult<(ConnectionManager, bool)> {
        let slot = self.slot.get();
        let mut current = slot.lock();
        if let Some(connection) = current.as_ref() {
            return Ok((connection.clone(), false));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *current = Some(connection.clone());
        Ok((connection, true))
    }

    /// Forgets this process's connection after a failure: the next `get` makes a new one.
    pub(crate) fn reset(&self) {
        *self.slot.get().lock() = None;
    }
}
