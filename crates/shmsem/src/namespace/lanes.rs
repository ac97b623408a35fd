//! Thread lanes: each thread that uses shmsem gets a number, unique among the live threads of
//! this process, which selects its holder records. A lane is returned when its thread exits.
//!
//! The number sits in a `const`-initialised thread-local (one load on the fast path); a second
//! thread-local with a destructor hands it back when the thread exits.

use std::{
    cell::{Cell, RefCell},
    sync::Mutex,
};

use super::lock;

/// Hands its thread's lane back when the thread exits.
struct LaneGuard(u16);

/// The lane used by code running while its thread's lane is already gone (late destructors),
/// and by threads beyond the 65 535th. Those callers serialise on [`SHARED_LANE_LOCK`].
pub(crate) const SHARED_LANE: u16 = u16::MAX;
static SHARED_LANE_LOCK: Mutex<()> = Mutex::new(());

/// `u32::MAX` until the thread's first use, then its lane.
const NO_LANE: u32 = u32::MAX;

/// The next lane never handed out, and the lanes handed back.
static LANES: Mutex<(u16, Vec<u16>)> = Mutex::new((0, Vec::new()));

impl Drop for LaneGuard {
    fn drop(&mut self) {
        LANE.set(NO_LANE);
        if self.0 != SHARED_LANE {
            lock(&LANES).1.push(self.0);
        }
    }
}

thread_local! {
    static LANE: Cell<u32> = const { Cell::new(NO_LANE) };
    static LANE_GUARD: RefCell<Option<LaneGuard>> = const { RefCell::new(None) };
}

/// This thread's lane, or `None` when the thread must use the shared lane.
#[inline]
pub(crate) fn current_lane() -> Option<u16> {
    match LANE.try_with(Cell::get) {
        Ok(l) if l < SHARED_LANE as u32 => Some(l as u16),
        Ok(NO_LANE) => assign_lane(),
        _ => None,
    }
}

#[cold]
fn assign_lane() -> Option<u16> {
    let lane = {
        let mut lanes = lock(&LANES);
        match lanes.1.pop() {
            Some(l) => l,
            None => {
                let l = lanes.0;
                lanes.0 = lanes.0.saturating_add(1); // sticks at SHARED_LANE
                l
            }
        }
    };
    // If the guard cannot be stored (the thread is exiting), give the lane back at once.
    let stored = LANE_GUARD.try_with(|g| *g.borrow_mut() = Some(LaneGuard(lane)));
    if stored.is_err() || lane == SHARED_LANE {
        if lane != SHARED_LANE {
            lock(&LANES).1.push(lane);
        }
        return None;
    }
    LANE.set(lane as u32);
    Some(lane)
}

/// Run `f` with this thread's lane, holding the shared-lane lock when it is the shared lane.
#[inline]
pub(crate) fn with_lane<T>(f: impl FnOnce(u16) -> T) -> T {
    match current_lane() {
        Some(lane) => f(lane),
        None => {
            let _one = lock(&SHARED_LANE_LOCK);
            f(SHARED_LANE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_lane_and_another_live_thread_gets_another() {
        let mine = current_lane().expect("a lane for this thread");
        assert_eq!(current_lane(), Some(mine), "a thread keeps its lane");
        let other = std::thread::spawn(|| current_lane().expect("a lane for the other thread"))
            .join()
            .expect("the other thread");
        assert_ne!(other, mine, "two live threads share a lane");
    }
}
