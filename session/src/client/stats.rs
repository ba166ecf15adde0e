//! `ClientStats`: what a client measured of its own play — input the room had to fill
//! in, its input lead and round trip, its input latency, and its commands.

use std::time::Duration;

/// A histogram of durations in whole milliseconds, 0 to 2 s (longer ones count in the
/// last bucket): percentiles without keeping every sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Vec<u32>,
    count: u64,
}

/// The histogram's range in milliseconds; longer samples land in the last bucket.
const HISTOGRAM_MS: usize = 2000;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; HISTOGRAM_MS + 1],
            count: 0,
        }
    }
}

impl LatencyHistogram {
    /// Counts one sample.
    pub fn record(&mut self, latency: Duration) {
        let ms = (latency.as_millis() as usize).min(HISTOGRAM_MS);
        self.buckets[ms] = self.buckets[ms].saturating_add(1);
        self.count += 1;
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest whole millisecond at or under which `percent`% of the samples lie
    /// (`None` without samples).
    pub fn percentile(&self, percent: u32) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let wanted = (self.count * percent.min(100) as u64).div_ceil(100).max(1);
        let mut seen = 0u64;
        let ms = self.buckets.iter().position(|&n| {
            seen += n as u64;
            seen >= wanted
        })?;
        Some(Duration::from_millis(ms as u64))
    }
}

/// What a client measured of its own play, across reconnections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Ticks on which the room filled in this player's input while it was connected
    /// (its input came too late, or not at all).
    pub own_input_replaced: u64,
    /// The input lead now, in ticks.
    pub input_lead: u64,
    /// The round trip now (median of recent samples).
    pub rtt: Duration,
    /// The jitter now (mean deviation of recent round trips).
    pub jitter: Duration,
    /// From handing input to the client to stepping the tick it was stamped for.
    pub input_latency: LatencyHistogram,
    /// Commands the game sent.
    pub commands_sent: u64,
    /// Own commands seen on verified ticks this client stepped through.
    pub commands_applied: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(50), None);
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        histogram.record(Duration::from_secs(9));
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(histogram.count(), 101);
        assert_eq!(histogram.percentile(50), ms(51));
        assert_eq!(histogram.percentile(99), ms(100));
        assert_eq!(
            histogram.percentile(100),
            ms(2000),
            "long samples in the last bucket"
        );
    }
}
