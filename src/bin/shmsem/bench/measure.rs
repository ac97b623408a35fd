//! How the scenarios measure: short batches sized to a target duration (a few milliseconds, so
//! that many fit between two preemptions on a busy machine), repeated many times with the
//! contenders interleaved (shmsem, POSIX, SysV, shmsem, …, starting with a different one each
//! repetition), and the median of the repetitions kept, so that a burst of noise from the rest
//! of the machine hits every contender alike and moves no median much.

use std::time::Duration;

/// How long and how often to measure: `--quick` or the default.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
    /// Repetitions of each in-process measurement.
    pub reps: usize,
    /// Target duration of one in-process batch.
    pub batch: Duration,
    /// Repetitions of each ping-pong measurement.
    pub pingpong_reps: usize,
    /// Target duration of one ping-pong batch.
    pub pingpong_batch: Duration,
    /// `contended4` windows per implementation.
    pub windows: usize,
    /// The length of one `contended4` window.
    pub window: Duration,
    /// Kills per implementation in `reclaim`.
    pub kills: usize,
}

impl Plan {
    /// The plan for `--quick` (well under 30 s on 2 cores) or the default (under 3 minutes).
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                reps: 41,
                batch: Duration::from_millis(3),
                pingpong_reps: 41,
                pingpong_batch: Duration::from_millis(5),
                windows: 11,
                window: Duration::from_millis(100),
                kills: 30,
            }
        } else {
            Plan {
                quick,
                reps: 151,
                batch: Duration::from_millis(5),
                pingpong_reps: 151,
                pingpong_batch: Duration::from_millis(10),
                windows: 31,
                window: Duration::from_millis(300),
                kills: 120,
            }
        }
    }
}

/// Something that runs `n` operations and says how long they took.
pub type Batch<'a> = Box<dyn FnMut(u64) -> anyhow::Result<Duration> + 'a>;

/// The number of operations that takes about `target`, found by doubling (which also warms up).
pub fn calibrate(run: &mut Batch<'_>, target: Duration) -> anyhow::Result<u64> {
    let mut n = 8u64;
    loop {
        let took = run(n)?;
        if took >= target / 8 || n >= 1 << 40 {
            let per_op = took.as_nanos().max(1) as f64 / n as f64;
            return Ok(((target.as_nanos() as f64 / per_op) as u64).max(1));
        }
        n *= 2;
    }
}

/// Nanoseconds per operation of each batch runner: calibrate each, then `reps` interleaved
/// repetitions; the medians.
pub fn ns_per_op(
    reps: usize,
    target: Duration,
    runs: &mut [Batch<'_>],
) -> anyhow::Result<Vec<f64>> {
    let mut sizes = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        sizes.push(calibrate(run, target)?);
    }
    let mut samplers: Vec<Box<dyn FnMut() -> anyhow::Result<f64> + '_>> = runs
        .iter_mut()
        .zip(sizes)
        .map(|(run, n)| {
            Box::new(move || Ok(run(n)?.as_nanos() as f64 / n as f64))
                as Box<dyn FnMut() -> anyhow::Result<f64>>
        })
        .collect();
    interleaved_medians(reps, &mut samplers)
}

/// Take `reps` samples from each sampler, interleaved and rotating which goes first; the
/// median of each.
pub fn interleaved_medians(
    reps: usize,
    samplers: &mut [Box<dyn FnMut() -> anyhow::Result<f64> + '_>],
) -> anyhow::Result<Vec<f64>> {
    let k = samplers.len();
    let mut samples = vec![Vec::with_capacity(reps); k];
    for rep in 0..reps {
        for j in 0..k {
            let which = (rep + j) % k;
            samples[which].push(samplers[which]()?);
        }
    }
    Ok(samples.iter_mut().map(|s| median(s)).collect())
}

/// The median (the mean of the middle two for an even count); NaN for none.
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

/// The `p`-th percentile (0 < p ≤ 100) by the nearest-rank method; NaN for none.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut [7.0], 99.0), 7.0);
    }
}
