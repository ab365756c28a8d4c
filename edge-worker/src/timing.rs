//! Per-request phase timings (listing, fetching, decoding the snapshot, replaying the
//! WAL, checking the key), reported in the `Server-Timing` response header so the
//! cold-start cost of every request is visible to clients and benchmarks. The
//! component handles one request per instance, so one thread-local list is enough.

use std::cell::RefCell;
use std::time::Instant;

thread_local! {
    static PHASES: RefCell<Vec<(&'static str, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets the phases of a previous request.
pub fn reset() {
    PHASES.with(|p| p.borrow_mut().clear());
}

/// Adds `ms` to phase `name`.
pub fn add(name: &'static str, ms: f64) {
    PHASES.with(|p| {
        let mut phases = p.borrow_mut();
        match phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += ms,
            None => phases.push((name, ms)),
        }
    });
}

/// Runs `f`, adding its duration to phase `name`.
pub fn time<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    add(name, started.elapsed().as_secs_f64() * 1e3);
    out
}

/// The `Server-Timing` header value (`fetch;dur=12.3, decode;dur=4.5`), if any phase ran.
pub fn header() -> Option<String> {
    PHASES.with(|p| {
        let phases = p.borrow();
        (!phases.is_empty()).then(|| {
            phases
                .iter()
                .map(|(name, ms)| format!("{name};dur={ms:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_render() {
        reset();
        assert_eq!(header(), None);
        add("fetch", 1.0);
        add("decode", 2.5);
        add("fetch", 0.5);
        assert_eq!(
            header().as_deref(),
            Some("fetch;dur=1.500, decode;dur=2.500")
        );
        reset();
    }
}
