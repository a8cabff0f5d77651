//! Percentiles, time units, failure reasons and the result every mode returns.

use std::sync::Mutex;
use std::time::Instant;

/// What a mode measured: one JSON object (`--json`; fields in declaration order) or one text
/// line, and whether the run counts as failed (exit code 1, with this message on stderr after
/// the result).
pub struct Outcome {
    pub json: String,
    pub text: String,
    pub failure: Option<String>,
}

/// Serializes a mode's report (a struct of numbers and lists: cannot fail).
pub fn to_json<T: serde::Serialize>(report: &T) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Microseconds since `start` (saturating).
pub fn us_since(start: Instant) -> u64 {
    start.elapsed().as_micros().min(u64::MAX as u128) as u64
}

/// Microseconds from `a` to `b` (0 if `b` is earlier).
pub fn us_between(a: Instant, b: Instant) -> u64 {
    b.saturating_duration_since(a)
        .as_micros()
        .min(u64::MAX as u128) as u64
}

/// Microseconds -> milliseconds, rounded to 1 µs.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `x` rounded to 3 decimals (JSON output stays readable).
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile (index `round((n-1)*p)`) of ascending microseconds, in ms;
/// 0 for no samples.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    ms(sorted_us[idx.min(sorted_us.len() - 1)])
}

/// Prints the first `limit` distinct failure reasons to stderr (later repeats and further
/// reasons are only counted by the caller).
pub struct Reasons {
    seen: Mutex<Vec<String>>,
    limit: usize,
}

impl Reasons {
    pub fn new(limit: usize) -> Self {
        Reasons {
            seen: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// Reports `reason` (about `what`, e.g. the URL) if it is new and under the limit.
    pub fn report(&self, what: &str, reason: &str) {
        // A poisoned lock only means another worker panicked while printing: keep going.
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if seen.len() < self.limit && !seen.iter().any(|r| r == reason) {
            seen.push(reason.to_string());
            eprintln!("loadgen: {what}: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[1500], 0.99), 1.5);
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.0), 1.0);
        assert_eq!(percentile_ms(&v, 0.5), 51.0); // round(99 * 0.5) = 50 -> 51 ms
        assert_eq!(percentile_ms(&v, 0.99), 99.0); // round(98.01) = 98 -> 99 ms
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 0.5), 2.0);
    }

    #[test]
    fn rounding() {
        assert_eq!(r3(1.23456), 1.235);
        assert_eq!(ms(1234), 1.234);
    }

    #[test]
    fn reasons_keep_first_distinct() {
        let r = Reasons::new(2);
        r.report("u1", "a");
        r.report("u2", "a");
        r.report("u3", "b");
        r.report("u4", "c");
        let seen = r.seen.lock().unwrap();
        assert_eq!(*seen, vec!["a".to_string(), "b".to_string()]);
    }
}
