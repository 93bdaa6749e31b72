//! What makes a benchmark figure comparable between boards: the host it
//! ran on ([`host`]: CPU, caches, the kernel set, memory bandwidth
//! measured in the same run, Hearth's version) and the statistics of its
//! samples ([`Stats`]). `hearth bench` (in `cli`) runs the models; this
//! module must not load or run one.

pub mod host;

/// Mean ± sample standard deviation, min and median of throughput samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub median: f64,
}

impl Stats {
    /// The statistics of `xs` (all zero for no samples).
    pub fn of(xs: &[f64]) -> Self {
        if xs.is_empty() {
            return Self {
                mean: 0.0,
                sd: 0.0,
                min: 0.0,
                median: 0.0,
            };
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = if xs.len() > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Self {
            mean,
            sd,
            min: sorted[0],
            median,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_statistics() {
        let s = Stats::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((s.mean - 5.0).abs() < 1e-12);
        assert!((s.sd - 2.138_089_935).abs() < 1e-6);
        assert_eq!(s.min, 2.0);
        assert_eq!(s.median, 4.5);
        let odd = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((odd.min, odd.median), (1.0, 2.0));
        assert_eq!(Stats::of(&[]).mean, 0.0);
        assert_eq!(Stats::of(&[7.0]).sd, 0.0);
    }
}
