//! Rate limits per API key: a token bucket (GCRA, from the `governor` crate rather than
//! a hand-written bucket) for reads and searches and a separate one for writes, so a
//! client's bulk load cannot starve its own searches. The quotas come from the flags
//! (`--search-rate`, `--write-rate`, per second per key, burst = one second's worth)
//! unless the key's tenant record overrides them. Over budget: 429 `rate_limited` with
//! `Retry-After` in whole seconds.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

/// Requests per second per key. In a tenant record `None` means the server's default
/// (`--search-rate`, `--write-rate`); 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    #[serde(default)]
    pub search_per_sec: Option<u32>,
    #[serde(default)]
    pub write_per_sec: Option<u32>,
}

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Budget {
    Search,
    Write,
}

type Keyed = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// The limiters, one per (budget, rate), keyed by key id.
#[derive(Default)]
pub struct Limiters {
    by_rate: Mutex<BTreeMap<(Budget, u32), std::sync::Arc<Keyed>>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiters")
    }
}

impl Limiters {
    /// Spends one request of `key`'s `budget` at `rate` per second. `Err` holds how
    /// long until a request would be allowed.
    pub fn check(&self, budget: Budget, rate: Option<u32>, key: &str) -> Result<(), Duration> {
        let Some(rate) = rate.and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let limiter = {
            let Ok(mut all) = self.by_rate.lock() else {
                return Ok(());
            };
            all.entry((budget, rate.get()))
                .or_insert_with(|| {
                    std::sync::Arc::new(RateLimiter::hashmap(Quota::per_second(rate)))
                })
                .clone()
        };
        limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}
