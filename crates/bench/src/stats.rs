//! The statistics of the report, and nothing else: medians, percentiles, the summary of paired
//! samples (median ratio, its bootstrap 95% interval, the ratio of minima), and the A/A
//! control's verdict.
//!
//! Timed figures come from paired batches (see `measure`): each pair gives one ratio, shmsem's
//! time over its peer's, measured back to back within a fraction of a millisecond. Noise on
//! these machines is one-sided and lasts seconds, so most pairs fall wholly inside or wholly
//! outside a burst and their ratio is undisturbed; the median of the ratios ignores the rest.
//! The bootstrap interval says how far that median could move with other pairs.
//!
//! The *minimum* is the ratio of the two contenders' minimum times (for throughputs, of their
//! maxima): with one-sided noise each contender's fastest batch is its least disturbed one. It
//! is not the smallest per-pair ratio, which only finds the pair whose *peer* was disturbed
//! most (a preempted 100 µs POSIX batch makes a ratio of 0.05).
//!
//! The bootstrap uses a fixed seed: the same samples always give the same interval.

/// The band an A/A control's median must stay in for the run to judge timed targets.
pub const CONTROL_BAND: (f64, f64) = (0.9, 1.1);

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 1000;

/// The seed of the bootstrap's generator: fixed, so that intervals are reproducible.
const SEED: u64 = 0x5EED_0FB0_0757_A9C3;

/// The median (the mean of the middle two for an even count); NaN for none. Sorts `samples`.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// The `p`-th percentile (0 < p ≤ 100) by the nearest-rank method; NaN for none. Sorts
/// `samples`.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The smallest sample; NaN for none.
pub fn minimum(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::NAN, f64::min)
}

/// The largest sample; NaN for none.
pub fn maximum(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::NAN, f64::max)
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Times.
    Lower,
    /// Throughputs.
    Higher,
}

/// What the report says about paired samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median ratio.
    pub median: f64,
    /// The bootstrap 95% interval of the median: the 2.5th and 97.5th percentiles of the
    /// medians of [`RESAMPLES`] resamples (with replacement, of the same size).
    pub ci95: (f64, f64),
    /// The ratio of the best samples: the minimum of `a` over the minimum of `b` (for
    /// [`Better::Higher`], of the maxima).
    pub min: f64,
    /// How many pairs.
    pub samples: usize,
}

impl Summary {
    /// Summarise pairs `(a[i], b[i])` by their ratios `a[i] / b[i]`; `None` without a pair.
    /// Pairs with a non-finite ratio (a batch that took no measurable time) are left out.
    pub fn of_pairs(a: &[f64], b: &[f64], better: Better) -> Option<Summary> {
        let (mut ratios, mut kept_a, mut kept_b) = (Vec::new(), Vec::new(), Vec::new());
        for (&x, &y) in a.iter().zip(b) {
            let r = x / y;
            if r.is_finite() {
                ratios.push(r);
                kept_a.push(x);
                kept_b.push(y);
            }
        }
        if ratios.is_empty() {
            return None;
        }
        let min = match better {
            Better::Lower => minimum(&kept_a) / minimum(&kept_b),
            Better::Higher => maximum(&kept_a) / maximum(&kept_b),
        };
        let ci95 = bootstrap_ci95(&ratios, RESAMPLES, SEED);
        Some(Summary {
            median: median(&mut ratios),
            ci95,
            min,
            samples: ratios.len(),
        })
    }
}

/// The percentile bootstrap 95% interval of the median of `samples` (not empty): `resamples`
/// resamples drawn with the generator seeded by `seed`.
pub fn bootstrap_ci95(samples: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let n = samples.len();
    if n == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = SplitMix(seed);
    let mut draw = vec![0.0; n];
    let mut medians = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in draw.iter_mut() {
            *slot = samples[rng.below(n as u64) as usize];
        }
        medians.push(median(&mut draw));
    }
    (
        percentile(&mut medians, 2.5),
        percentile(&mut medians, 97.5),
    )
}

/// Whether an A/A control's median says the machine was too noisy to judge timed targets:
/// outside [`CONTROL_BAND`], or not measured at all.
pub fn too_noisy(control: Option<&Summary>) -> bool {
    control.is_none_or(|c| !(CONTROL_BAND.0..=CONTROL_BAND.1).contains(&c.median))
}

/// SplitMix64: a small, well-mixed generator, enough to draw resamples.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by rejection so that every value is equally likely.
    fn below(&mut self, n: u64) -> u64 {
        let n = n.max(1);
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_percentiles_and_minimum() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 2.5), 3.0);
        assert_eq!(percentile(&mut [7.0], 99.0), 7.0);
        assert_eq!(minimum(&[3.0, 0.5, 2.0]), 0.5);
        assert!(minimum(&[]).is_nan());
    }

    /// Known pairs: ratios 0.50, 0.51, …, 1.50 (101 of them) over peer times of 10, 11, 12 ns
    /// in turn, shuffled; then one pair that a burst of noise made absurd each way (shmsem
    /// preempted: 40×; the peer preempted: 0.02×) and one that measured nothing.
    fn known() -> (Vec<f64>, Vec<f64>) {
        let mut pairs: Vec<(f64, f64)> = (0..101)
            .map(|i| {
                let peer = 10.0 + f64::from(i % 3);
                ((0.5 + f64::from(i) / 100.0) * peer, peer)
            })
            .collect();
        // A fixed shuffle: order must not matter.
        let mut rng = SplitMix(7);
        for i in (1..pairs.len()).rev() {
            pairs.swap(i, rng.below(i as u64 + 1) as usize);
        }
        pairs.extend([(400.0, 10.0), (10.0, 500.0), (10.0, 0.0)]);
        pairs.into_iter().unzip()
    }

    #[test]
    fn known_pairs_are_summarised_exactly() {
        let (a, b) = known();
        let s = Summary::of_pairs(&a, &b, Better::Lower).expect("pairs");
        // 103 finite ratios: 0.02, 0.50 … 1.50, 40; the 52nd is 1.00.
        assert_eq!(s.samples, 103);
        assert!((s.median - 1.0).abs() < 1e-12, "{s:?}");
        // The fastest shmsem batch (5 ns, ratio 0.5 over 10 ns) over the fastest peer batch
        // (10 ns): the preempted pairs move neither.
        assert!((s.min - 0.5).abs() < 1e-12, "{s:?}");
        // The median of n roughly uniform ratios of spread 1 moves by about
        // 1.96 × sqrt(n) / 2 ranks ≈ 0.10 either way: the interval must bracket the median,
        // stay about that wide, and not be degenerate.
        let (lo, hi) = s.ci95;
        assert!(lo < s.median && s.median < hi, "{s:?}");
        assert!((0.87..=0.96).contains(&lo), "{s:?}");
        assert!((1.04..=1.13).contains(&hi), "{s:?}");
        // Reproducible: the same samples, the same interval.
        assert_eq!(Summary::of_pairs(&a, &b, Better::Lower), Some(s));
        // Throughputs: the best of each is its largest.
        let t = Summary::of_pairs(&[3.0, 4.0, 2.0], &[2.0, 8.0, 1.0], Better::Higher);
        assert_eq!(t.map(|t| (t.median, t.min)), Some((1.5, 0.5)));
    }

    #[test]
    fn constant_samples_have_a_point_interval() {
        let s = Summary::of_pairs(&[4.0; 50], &[2.0; 50], Better::Lower).expect("pairs");
        assert_eq!(
            (s.median, s.ci95, s.min, s.samples),
            (2.0, (2.0, 2.0), 2.0, 50)
        );
        assert_eq!(Summary::of_pairs(&[], &[], Better::Lower), None);
        assert_eq!(Summary::of_pairs(&[1.0], &[0.0], Better::Lower), None);
    }

    #[test]
    fn the_control_band() {
        let at = |median| Summary {
            median,
            ci95: (median, median),
            min: median,
            samples: 1,
        };
        assert!(!too_noisy(Some(&at(1.0))));
        assert!(!too_noisy(Some(&at(0.9))));
        assert!(!too_noisy(Some(&at(1.1))));
        assert!(too_noisy(Some(&at(1.12))));
        assert!(too_noisy(Some(&at(0.85))));
        assert!(too_noisy(None));
    }
}
