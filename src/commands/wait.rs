//! `shmsem wait`: wait until nothing of a semaphore is held.

use std::{
    thread,
    time::{Duration, Instant},
};

use shmsem::Options;

use super::TimedOut;
use crate::cli::WaitArgs;

/// The first pause between two looks at the value.
const FIRST_NAP: Duration = Duration::from_millis(1);
/// The longest pause between two looks.
const LONGEST_NAP: Duration = Duration::from_millis(50);
/// The longest pause between two looks at a cluster-scope semaphore.
const CLUSTER_NAP: Duration = Duration::from_millis(200);

/// Return once the semaphore's value is 0, looking at it with a backoff from 1 ms to 50 ms; fail
/// with [`TimedOut`] past `--timeout`. Takes nothing, so it never delays anyone.
pub fn wait(opts: Options, args: WaitArgs) -> anyhow::Result<()> {
    let opts_cluster = opts.scope_of() == shmsem::Scope::Cluster;
    let sem = opts.open_existing(&args.name)?;
    // No deadline when there is no timeout, or one too far away to be represented.
    let deadline = args
        .wait
        .timeout()
        .and_then(|t| Some((Instant::now().checked_add(t)?, t)));
    let mut nap = FIRST_NAP;
    // Each look at a cluster-scope semaphore is a read of the cluster: look less often.
    let longest = if opts_cluster {
        CLUSTER_NAP
    } else {
        LONGEST_NAP
    };
    loop {
        let info = sem.info()?;
        if info.value == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if let Some((deadline, timeout)) = deadline {
            if now >= deadline {
                return Err(TimedOut(format!(
                    "timed out after {} ms waiting for {:?} to be released (value {} of {}); \
                     see who holds it with `shmsem show {}`",
                    timeout.as_millis(),
                    args.name,
                    info.value,
                    info.capacity,
                    args.name
                ))
                .into());
            }
            nap = nap.min(deadline - now);
        }
        thread::sleep(nap);
        nap = (nap * 2).min(longest);
    }
}
