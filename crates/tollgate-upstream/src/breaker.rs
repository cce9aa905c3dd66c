//! [`Breaker`]: a failure memo per upstream, so that once an outage is known, requests that
//! need the upstream are answered at once instead of each waiting out a timeout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// When a [`Breaker`] opens and how long it stays open.
///
/// ```
/// use std::time::Duration;
/// use tollgate_upstream::BreakerPolicy;
///
/// let policy = BreakerPolicy::default()
///     .failures(3)
///     .probe_interval(Duration::from_secs(1));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    failures: u32,
    probe_interval: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            probe_interval: Duration::from_secs(2),
        }
    }
}

impl BreakerPolicy {
    /// How many consecutive failures open the breaker (default: 5). A timeout opens it at
    /// once, whatever this says: the next request would only wait as long.
    pub fn failures(mut self, failures: u32) -> Self {
        self.failures = failures.max(1);
        self
    }

    /// How long the breaker stays open before one request probes the upstream again
    /// (default: 2 s). This is also how soon a recovered upstream is used again, and the
    /// `Retry-After` of the 503s answered meanwhile.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// The probe interval set.
    pub fn configured_probe_interval(&self) -> Duration {
        self.probe_interval
    }
}

/// A circuit breaker for one upstream: closed while calls succeed; opened by consecutive
/// failures or one timeout; while open, calls are refused at once with the time left; after
/// the probe interval, one call at a time probes, and its success closes the breaker.
///
/// Every tollgate upstream (a key service, a JWKS, a token or introspection endpoint) has one
/// in its [`Upstream`](crate::Upstream). A state change is logged once (a warning when it
/// opens, info when it closes), not once per refused request. No lock is held across a call.
///
/// ```
/// use tollgate_upstream::{Breaker, BreakerPolicy};
///
/// let breaker = Breaker::new("billing database", BreakerPolicy::default());
/// let permit = breaker.permit().expect("closed");
/// permit.failed(true); // a timeout
/// assert!(breaker.permit().is_err()); // open: refused at once, with the time left
/// assert!(breaker.is_open());
/// ```
#[derive(Debug)]
pub struct Breaker {
    what: String,
    policy: BreakerPolicy,
    state: Mutex<State>,
    openings: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is under way.
    Probing,
}

/// Leave to call the upstream, from [`Breaker::permit`]. Say how the call went with
/// [`succeeded`](Self::succeeded) or [`failed`](Self::failed); a permit dropped without
/// either (a cancelled call) counts as neither, and frees the probe slot.
#[must_use]
#[derive(Debug)]
pub struct Permit<'b> {
    breaker: &'b Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    /// A closed breaker for the upstream described by `what` (used in log lines).
    pub fn new(what: impl Into<String>, policy: BreakerPolicy) -> Self {
        Breaker {
            what: what.into(),
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
            openings: AtomicU64::new(0),
        }
    }

    /// Leave to make one call, or `Err(time left)` while the breaker is open or another
    /// call is probing.
    pub fn permit(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::Probing;
                tracing::debug!(upstream = %self.what, "probing the upstream");
                true
            }
            State::Probing => return Err(self.policy.probe_interval),
        };
        Ok(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    /// Whether the breaker is open now (or probing).
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    /// How many times it has opened.
    pub fn openings(&self) -> u64 {
        self.openings.load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the breaker; true when it was closed.
    fn open(&self, state: &mut State, was_closed: bool) -> bool {
        *state = State::Open {
            until: Instant::now() + self.policy.probe_interval,
        };
        if was_closed {
            self.openings.fetch_add(1, Relaxed);
            tracing::warn!(
                upstream = %self.what,
                probe_interval = ?self.policy.probe_interval,
                "upstream failing: answering at once until a probe succeeds"
            );
        } else {
            tracing::debug!(upstream = %self.what, "probe failed; still open");
        }
        was_closed
    }
}

impl Permit<'_> {
    /// The call succeeded: the breaker closes (or stays closed). True when this closed an
    /// open breaker.
    pub fn succeeded(mut self) -> bool {
        self.settled = true;
        let mut state = self.breaker.lock();
        let reopened = !matches!(*state, State::Closed { .. });
        if reopened {
            tracing::info!(upstream = %self.breaker.what, "upstream recovered");
        }
        *state = State::Closed { failures: 0 };
        reopened
    }

    /// The call failed; `timed_out` opens the breaker at once. True when this opened a
    /// closed breaker.
    pub fn failed(mut self, timed_out: bool) -> bool {
        self.settled = true;
        let mut state = self.breaker.lock();
        match *state {
            State::Closed { failures } => {
                let failures = failures + 1;
                if timed_out || failures >= self.breaker.policy.failures {
                    self.breaker.open(&mut state, true)
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            State::Probing | State::Open { .. } => self.breaker.open(&mut state, false),
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            // A cancelled probe: let the next call probe at once.
            let mut state = self.breaker.lock();
            if matches!(*state, State::Probing) {
                *state = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_consecutive_failures_and_closes_after_a_good_probe() {
        let policy = BreakerPolicy::default()
            .failures(2)
            .probe_interval(Duration::from_millis(20));
        let breaker = Breaker::new("test", policy);
        breaker.permit().unwrap().failed(false);
        breaker.permit().unwrap().succeeded();
        breaker.permit().unwrap().failed(false);
        assert!(!breaker.is_open(), "a success resets the count");
        breaker.permit().unwrap().failed(false);
        assert!(breaker.is_open());
        assert!(breaker.permit().is_err());
        std::thread::sleep(Duration::from_millis(30));
        let probe = breaker.permit().expect("one probe");
        assert!(breaker.permit().is_err(), "only one probe at a time");
        probe.succeeded();
        assert!(!breaker.is_open());
        assert_eq!(breaker.openings(), 1);
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let breaker = Breaker::new(
            "test",
            BreakerPolicy::default().probe_interval(Duration::ZERO),
        );
        breaker.permit().unwrap().failed(true);
        drop(breaker.permit().unwrap());
        breaker.permit().expect("probe again").failed(false);
        assert!(breaker.is_open());
    }
}
