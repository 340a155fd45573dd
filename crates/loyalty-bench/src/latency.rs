//! Latency percentiles with an HDR histogram: exact enough at p99.9 without keeping every sample.

use std::time::Duration;

use hdrhistogram::Histogram;

#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        // 1 µs to 60 s at 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Self { histogram }
    }

    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds");
    }

    /// The latency at `quantile` (0.0..=1.0), in milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        self.quantile_us(quantile) as f64 / 1000.0
    }

    /// The latency at `quantile` (0.0..=1.0), in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        self.histogram.value_at_quantile(quantile)
    }

    /// The longest latency, in microseconds.
    pub fn max_us(&self) -> u64 {
        self.histogram.max()
    }
}
