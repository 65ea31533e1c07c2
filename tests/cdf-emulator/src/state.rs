//! Shared state of one running emulator.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::{Clock, duration_ms};
use crate::config::EmulatorConfig;
use crate::extpipes::ExtpipeStore;
use crate::faults::FaultSpec;
use crate::instances::DataModeling;
use crate::raw::RawStore;
use crate::request_log::RequestRecord;

pub type AppState = Arc<Shared>;

/// Locks a mutex, recovering the data if a previous holder panicked: the emulator's state
/// stays usable for the rest of a test run.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many request-log entries are kept (oldest dropped first).
pub const REQUEST_LOG_CAP: usize = 100_000;

pub struct Shared {
    pub project: String,
    pub client_id: String,
    pub client_secret: String,
    pub clock: Clock,
    token_ttl_ms: AtomicI64,
    cursor_expiry_ms: AtomicI64,
    tombstone_retention_ms: AtomicI64,
    explicit_nulls: AtomicBool,
    /// Access token → expiry (emulator clock, epoch ms).
    pub tokens: Mutex<HashMap<String, i64>>,
    dm: Mutex<DataModeling>,
    pub raw: Mutex<RawStore>,
    pub extpipes: Mutex<ExtpipeStore>,
    pub datasets: Mutex<crate::datasets::DataSetStore>,
    pub faults: Mutex<Vec<FaultSpec>>,
    pub log: Mutex<VecDeque<RequestRecord>>,
    pub request_ids: AtomicU64,
}

/// Shows identity only: the client secret and issued tokens never appear in debug output.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("project", &self.project)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Self {
        Shared {
            project: config.project.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            clock: Clock::default(),
            token_ttl_ms: AtomicI64::new(duration_ms(config.token_ttl)),
            cursor_expiry_ms: AtomicI64::new(duration_ms(config.cursor_expiry)),
            tombstone_retention_ms: AtomicI64::new(duration_ms(config.tombstone_retention)),
            explicit_nulls: AtomicBool::new(config.explicit_nulls),
            tokens: Mutex::default(),
            dm: Mutex::default(),
            raw: Mutex::default(),
            extpipes: Mutex::default(),
            datasets: Mutex::default(),
            faults: Mutex::default(),
            log: Mutex::default(),
            request_ids: AtomicU64::new(0),
        }
    }

    pub fn dm(&self) -> MutexGuard<'_, DataModeling> {
        lock(&self.dm)
    }

    pub fn token_ttl_ms(&self) -> i64 {
        self.token_ttl_ms.load(Ordering::Relaxed)
    }
    pub fn set_token_ttl_ms(&self, v: i64) {
        self.token_ttl_ms.store(v, Ordering::Relaxed);
    }
    pub fn cursor_expiry_ms(&self) -> i64 {
        self.cursor_expiry_ms.load(Ordering::Relaxed)
    }
    pub fn set_cursor_expiry_ms(&self, v: i64) {
        self.cursor_expiry_ms.store(v, Ordering::Relaxed);
    }
    pub fn tombstone_retention_ms(&self) -> i64 {
        self.tombstone_retention_ms.load(Ordering::Relaxed)
    }
    pub fn set_tombstone_retention_ms(&self, v: i64) {
        self.tombstone_retention_ms.store(v, Ordering::Relaxed);
    }
    pub fn explicit_nulls(&self) -> bool {
        self.explicit_nulls.load(Ordering::Relaxed)
    }
    pub fn set_explicit_nulls(&self, v: bool) {
        self.explicit_nulls.store(v, Ordering::Relaxed);
    }

    /// Forgets all data (schema, instances, RAW, extraction pipelines), faults and the request
    /// log. Issued tokens and the clock offset are kept. Cursors issued before become invalid.
    pub fn reset(&self) {
        *self.dm() = DataModeling::default();
        *lock(&self.raw) = RawStore::default();
        *lock(&self.extpipes) = ExtpipeStore::default();
        *lock(&self.datasets) = crate::datasets::DataSetStore::default();
        lock(&self.faults).clear();
        lock(&self.log).clear();
    }
}
