//! [`alternating`]: two operations timed in alternating rounds, for benchmarks whose effect is
//! smaller than the drift of the machine they run on.

use std::time::Instant;

/// Seconds per call of `a` and of `b`, one pair per round: `rounds` times, `calls` calls of
/// `a`, then `calls` calls of `b`.
///
/// On a shared machine, loopback round trips and random memory accesses drift by ±20–30 %
/// over the minutes between two separate benchmark runs, more than the few percent a layer
/// adds. Alternating in short rounds puts both sides under the same conditions; the ratio or
/// difference of each round, summed up by [`quartiles`], cancels the drift.
///
/// ```
/// use tollgate_testkit::{alternating, quartiles};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let work = |n: u64| (0..n).fold(0u64, |acc, i| acc ^ i.wrapping_mul(31));
/// let rounds = alternating(
///     async || { std::hint::black_box(work(100)); },
///     async || { std::hint::black_box(work(10_000)); },
///     20,
///     10,
/// )
/// .await;
/// let (_, median, _) = quartiles(rounds.iter().map(|(a, b)| b / a).collect());
/// assert!(median > 1.0);
/// # }
/// ```
pub async fn alternating(
    mut a: impl AsyncFnMut(),
    mut b: impl AsyncFnMut(),
    calls: u32,
    rounds: usize,
) -> Vec<(f64, f64)> {
    async fn time(f: &mut impl AsyncFnMut(), calls: u32) -> f64 {
        let start = Instant::now();
        for _ in 0..calls {
            f().await;
        }
        start.elapsed().as_secs_f64() / f64::from(calls.max(1))
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let a = time(&mut a, calls).await;
        times.push((a, time(&mut b, calls).await));
    }
    times
}

/// The first quartile, the median and the third quartile of `values` (`NaN`s if empty).
///
/// ```
/// assert_eq!(tollgate_testkit::quartiles(vec![4.0, 1.0, 3.0, 2.0, 5.0]), (2.0, 3.0, 4.0));
/// ```
pub fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: usize| values[(values.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}
