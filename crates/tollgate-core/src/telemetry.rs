//! What tollgate counts, through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`, off by default). Without the feature these types are empty and every call
//! compiles to nothing.
//!
//! A handle is registered with the recorder installed at the time (`metrics`' global one, or
//! a thread's local one) the first time its label set is used, then kept: a request pays a
//! lookup in a small map and an atomic add, not a registry lookup. Install your exporter's
//! recorder (`metrics-exporter-prometheus`, OpenTelemetry's) before the first request.
//!
//! Label values are bounded: outcomes, reasons, credential kinds, upstream targets, and the
//! issuers you configured. A subject, key id, token or `kid` is never a label.
//!
//! ```
//! use tollgate_core::telemetry::Family;
//!
//! // A counter per result, registered when a result is first seen.
//! let calls: Family<&'static str> = Family::counters("my_calls_total");
//! calls.with("ok", |result| vec![("result", result.to_string())], |c| c.increment());
//! ```

use std::fmt;
#[cfg(feature = "metrics")]
use std::{collections::HashMap, hash::Hash};

/// A counter (a no-op without the feature `metrics`).
#[derive(Clone)]
pub struct Counter(#[cfg(feature = "metrics")] metrics::Counter);

/// A gauge (a no-op without the feature `metrics`).
#[derive(Clone)]
pub struct Gauge(#[cfg(feature = "metrics")] metrics::Gauge);

/// A histogram (a no-op without the feature `metrics`).
#[derive(Clone)]
pub struct Histogram(#[cfg(feature = "metrics")] metrics::Histogram);

/// Labels of one series: names fixed by tollgate, values bounded.
pub type Labels = Vec<(&'static str, String)>;

#[cfg(feature = "metrics")]
fn key(name: &'static str, labels: Labels) -> metrics::Key {
    let labels: Vec<metrics::Label> = labels
        .into_iter()
        .map(|(k, v)| metrics::Label::new(k, v))
        .collect();
    metrics::Key::from_parts(name, labels)
}

#[cfg(feature = "metrics")]
const METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("tollgate", metrics::Level::INFO, Some("tollgate"));

impl Counter {
    /// Registers the counter `name` with `labels` with the recorder installed now.
    #[allow(unused_variables)]
    pub fn register(name: &'static str, labels: Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Counter(metrics::with_recorder(|r| {
                r.register_counter(&key(name, labels), &METADATA)
            }))
        }
        #[cfg(not(feature = "metrics"))]
        Counter()
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        #[cfg(feature = "metrics")]
        self.0.increment(1);
    }
}

impl Gauge {
    /// Registers the gauge `name` with `labels` with the recorder installed now.
    #[allow(unused_variables)]
    pub fn register(name: &'static str, labels: Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Gauge(metrics::with_recorder(|r| {
                r.register_gauge(&key(name, labels), &METADATA)
            }))
        }
        #[cfg(not(feature = "metrics"))]
        Gauge()
    }

    /// Sets the value.
    #[inline]
    #[allow(unused_variables)]
    pub fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.0.set(value);
    }
}

impl Histogram {
    /// Registers the histogram `name` with `labels` with the recorder installed now.
    #[allow(unused_variables)]
    pub fn register(name: &'static str, labels: Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Histogram(metrics::with_recorder(|r| {
                r.register_histogram(&key(name, labels), &METADATA)
            }))
        }
        #[cfg(not(feature = "metrics"))]
        Histogram()
    }

    /// Records one value (in base units: seconds, bytes).
    #[inline]
    #[allow(unused_variables)]
    pub fn record(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.0.record(value);
    }
}

macro_rules! opaque_debug {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($t))
            }
        }
    )*};
}
opaque_debug!(Counter, Gauge, Histogram);

/// Series of one metric, one per label set, each registered the first time it is used.
///
/// Read without a lock (the map is swapped whole when a label set is added, which happens
/// once per set). At most [`Family::MAX_SERIES`] label sets are kept; past that, values go to
/// a series whose every label is `other`.
pub struct Family<K, M = Counter> {
    name: &'static str,
    #[cfg(feature = "metrics")]
    series: arc_swap::ArcSwap<HashMap<K, M>>,
    #[cfg(not(feature = "metrics"))]
    series: std::marker::PhantomData<fn(K) -> M>,
}

impl<K, M> fmt::Debug for Family<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family").field("name", &self.name).finish()
    }
}

/// What a [`Family`] can hold.
pub trait Metric: Clone {
    /// Registers the metric `name` with `labels`.
    fn register(name: &'static str, labels: Labels) -> Self;
}

impl Metric for Counter {
    fn register(name: &'static str, labels: Labels) -> Self {
        Counter::register(name, labels)
    }
}

impl Metric for Gauge {
    fn register(name: &'static str, labels: Labels) -> Self {
        Gauge::register(name, labels)
    }
}

impl Metric for Histogram {
    fn register(name: &'static str, labels: Labels) -> Self {
        Histogram::register(name, labels)
    }
}

impl<K> Family<K, Counter> {
    /// Counters named `name`.
    pub fn counters(name: &'static str) -> Self {
        Family::new(name)
    }
}

impl<K, M> Family<K, M> {
    /// Most label sets kept per family: a bound against a label value that is not bounded
    /// (an issuer set by your own authenticator from the request, say).
    pub const MAX_SERIES: usize = 512;

    /// Series of the metric `name`.
    pub fn new(name: &'static str) -> Self {
        Family {
            name,
            series: Default::default(),
        }
    }
}

#[cfg(feature = "metrics")]
impl<K: Hash + Eq + Clone, M: Metric> Family<K, M> {
    /// Calls `f` with the series for `key`, registered with `labels(&key)` the first time.
    /// Past [`MAX_SERIES`](Self::MAX_SERIES) label sets, the series whose labels all say
    /// `other`.
    #[inline]
    pub fn with(&self, key: K, labels: impl FnOnce(&K) -> Labels, f: impl FnOnce(&M)) {
        if let Some(m) = self.series.load().get(&key) {
            return f(m);
        }
        self.add(key, labels, f);
    }

    #[cold]
    fn add(&self, key: K, labels: impl FnOnce(&K) -> Labels, f: impl FnOnce(&M)) {
        let mut labels = labels(&key);
        if self.series.load().len() >= Self::MAX_SERIES {
            labels.iter_mut().for_each(|(_, v)| *v = "other".into());
            return f(&M::register(self.name, labels));
        }
        let m = M::register(self.name, labels);
        // Two first uses at once register the same series twice: the recorder hands back the
        // same one, so either copy counts in the same place.
        self.series.rcu(|series| {
            let mut series = HashMap::clone(series);
            series.insert(key.clone(), m.clone());
            series
        });
        f(&m);
    }
}

#[cfg(not(feature = "metrics"))]
impl<K, M: Metric> Family<K, M> {
    /// Calls `f` with the series for `key` (a no-op without the feature `metrics`).
    #[inline]
    pub fn with(&self, _key: K, _labels: impl FnOnce(&K) -> Labels, _f: impl FnOnce(&M)) {}
}

/// One series registered the first time it is used: for a metric whose labels are fixed
/// when it is made (an engine's `kind`, a result), so a use costs an atomic load.
pub struct Lazy<M = Counter> {
    #[cfg(feature = "metrics")]
    cell: std::sync::OnceLock<M>,
    #[cfg(not(feature = "metrics"))]
    cell: std::marker::PhantomData<fn() -> M>,
}

impl<M> Default for Lazy<M> {
    fn default() -> Self {
        Lazy {
            cell: Default::default(),
        }
    }
}

impl<M> fmt::Debug for Lazy<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lazy")
    }
}

impl<M: Metric> Lazy<M> {
    /// Calls `f` with the series, registered as `name` with `labels()` the first time.
    #[inline]
    #[allow(unused_variables)]
    pub fn with(&self, name: &'static str, labels: impl FnOnce() -> Labels, f: impl FnOnce(&M)) {
        #[cfg(feature = "metrics")]
        f(self.cell.get_or_init(|| M::register(name, labels())));
    }
}
