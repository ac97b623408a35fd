//! How the timed scenarios measure: short batches (a tenth of a millisecond in process), run in
//! rounds of one batch per contender back to back, the order changing every round so that each
//! contender goes before each other equally often; hundreds of rounds. A round's batches are
//! close enough in time that noise lasting seconds hits them alike, so the per-round ratio of
//! their times per operation is what `stats` summarises.

use std::time::Duration;

/// How long and how often to measure: `--quick` (under 30 s in all) or the default.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
    /// Paired rounds of each in-process scenario.
    pub rounds: usize,
    /// Target duration of one in-process batch.
    pub batch: Duration,
    /// Rounds of the A/A control taken before each scenario (pooled over the run).
    pub control_slice: usize,
    /// Paired rounds of each ping-pong placement.
    pub pingpong_rounds: usize,
    /// Target duration of one ping-pong batch.
    pub pingpong_batch: Duration,
    /// Paired rounds of `contended4`.
    pub contended_rounds: usize,
    /// The length of one `contended4` window.
    pub window: Duration,
    /// Kills per implementation in `reclaim`.
    pub kills: usize,
    /// How long `idle100`'s waiters are watched.
    pub idle: Duration,
    /// Operations per instruction count.
    pub count_ops: u64,
}

impl Plan {
    /// The plan for `--quick` or the default (a few minutes).
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                rounds: 600,
                batch: Duration::from_micros(100),
                control_slice: 60,
                pingpong_rounds: 240,
                pingpong_batch: Duration::from_millis(1),
                contended_rounds: 48,
                window: Duration::from_millis(20),
                kills: 30,
                idle: Duration::from_secs(2),
                count_ops: 2000,
            }
        } else {
            Plan {
                quick,
                rounds: 3000,
                batch: Duration::from_micros(100),
                control_slice: 300,
                pingpong_rounds: 600,
                pingpong_batch: Duration::from_millis(1),
                contended_rounds: 120,
                window: Duration::from_millis(50),
                kills: 120,
                idle: Duration::from_secs(10),
                count_ops: 2000,
            }
        }
    }
}

/// Something that runs `n` operations and says how long they took.
pub type Batch<'a> = Box<dyn FnMut(u64) -> anyhow::Result<Duration> + 'a>;

/// Something that takes one sample.
pub type Sampler<'a, T> = Box<dyn FnMut() -> anyhow::Result<T> + 'a>;

/// The number of operations that takes about `target`, found by doubling (which also warms up).
pub fn calibrate(run: &mut Batch<'_>, target: Duration) -> anyhow::Result<u64> {
    let mut n = 4u64;
    loop {
        let took = run(n)?;
        if took >= target / 8 || n >= 1 << 40 {
            let per_op = took.as_nanos().max(1) as f64 / n as f64;
            return Ok(((target.as_nanos() as f64 / per_op) as u64).max(1));
        }
        n *= 2;
    }
}

/// Nanoseconds per operation of each batch runner in each of `rounds` paired rounds
/// (`[runner][round]`): each runner's batch size is calibrated to `target` first.
pub fn paired_ns_per_op(
    rounds: usize,
    target: Duration,
    runs: &mut [Batch<'_>],
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut sizes = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        sizes.push(calibrate(run, target)?);
    }
    let mut samplers: Vec<Sampler<'_, f64>> = runs
        .iter_mut()
        .zip(sizes)
        .map(|(run, n)| {
            Box::new(move || Ok(run(n)?.as_nanos() as f64 / n as f64)) as Sampler<'_, f64>
        })
        .collect();
    paired(rounds, &mut samplers)
}

/// `rounds` rounds of one sample from each sampler, in an order that changes every round
/// (every permutation in turn); the samples as `[sampler][round]`.
pub fn paired<T>(rounds: usize, samplers: &mut [Sampler<'_, T>]) -> anyhow::Result<Vec<Vec<T>>> {
    let orders = permutations(samplers.len());
    let mut samples: Vec<Vec<T>> = samplers
        .iter()
        .map(|_| Vec::with_capacity(rounds))
        .collect();
    for round in 0..rounds {
        for &which in &orders[round % orders.len()] {
            samples[which].push(samplers[which]()?);
        }
    }
    Ok(samples)
}

/// Every order of `0..k`, in lexicographic order (one empty order for `k == 0`).
pub fn permutations(k: usize) -> Vec<Vec<usize>> {
    fn extend(prefix: &mut Vec<usize>, k: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == k {
            out.push(prefix.clone());
            return;
        }
        for i in 0..k {
            if !prefix.contains(&i) {
                prefix.push(i);
                extend(prefix, k, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    extend(&mut Vec::with_capacity(k), k, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contender_goes_before_every_other_equally_often() {
        assert_eq!(permutations(2), vec![vec![0, 1], vec![1, 0]]);
        let orders = permutations(3);
        assert_eq!(orders.len(), 6);
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let first = orders
                .iter()
                .filter(|o| o.iter().position(|&x| x == a) < o.iter().position(|&x| x == b))
                .count();
            assert_eq!(first, 3, "{a} before {b}");
        }
    }

    #[test]
    fn paired_rounds_take_one_sample_each_per_round() {
        let log = std::cell::RefCell::new(Vec::new());
        let mut samplers: Vec<Sampler<'_, usize>> = (0..2usize)
            .map(|i| {
                let log = &log;
                Box::new(move || {
                    log.borrow_mut().push(i);
                    Ok(i)
                }) as Sampler<'_, usize>
            })
            .collect();
        let s = paired(4, &mut samplers).expect("samples");
        assert_eq!(s, vec![vec![0; 4], vec![1; 4]]);
        assert_eq!(*log.borrow(), vec![0, 1, 1, 0, 0, 1, 1, 0]);
    }
}
