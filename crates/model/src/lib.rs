//! The reference model of one process's view of shmsem's semaphores: a semaphore is a capacity
//! and a value (the weight held), and every call's outcome is a short string, `ok` or the error
//! with its numbers, that the library's result must match ([`outcome`]).
//!
//! The model knows the rules, not the library: what an acquire of a weight gives (invalid,
//! too large, blocked, granted), what an `exit` of a count gives against what a handle
//! `enter`ed, and what a capacity change gives. The property tests and the fuzz targets drive
//! the library and this model side by side.

use shmsem::{Error, Info};

/// A short, comparable description of a library call's outcome: `ok`, or the error and its
/// numbers (`WouldBlock(weight,available)`, `Timeout(weight)`, `WeightTooLarge(weight,capacity)`,
/// `NotHeld(count,held)`, `InvalidArgument`); any other error is `unexpected: …`, which no
/// expectation of the model ever is.
pub fn outcome<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => OK.into(),
        Err(Error::WouldBlock { weight, available }) => format!("WouldBlock({weight},{available})"),
        Err(Error::Timeout { weight, .. }) => format!("Timeout({weight})"),
        Err(Error::WeightTooLarge { weight, capacity }) => {
            format!("WeightTooLarge({weight},{capacity})")
        }
        Err(Error::NotHeld { count, held }) => format!("NotHeld({count},{held})"),
        Err(Error::InvalidArgument { .. }) => INVALID.into(),
        Err(e) => format!("unexpected: {e:?}"),
    }
}

/// The outcome of a call that succeeded.
pub const OK: &str = "ok";
/// The outcome of a call refused for a zero weight, count or capacity.
pub const INVALID: &str = "InvalidArgument";

/// The model of one semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sem {
    pub capacity: u32,
    /// The weight held, by every holder together.
    pub value: u32,
}

impl Sem {
    /// A new semaphore, nothing held.
    pub fn new(capacity: u32) -> Sem {
        Sem { capacity, value: 0 }
    }

    /// What is free now.
    pub fn available(self) -> u32 {
        self.capacity.saturating_sub(self.value)
    }

    /// What an acquire of `w` gives now: `blocked` when it does not fit now but could later.
    pub fn take(self, w: u32, blocked: &str) -> String {
        if w == 0 {
            INVALID.into()
        } else if w > self.capacity {
            format!("WeightTooLarge({w},{})", self.capacity)
        } else if self.value + w > self.capacity {
            blocked.into()
        } else {
            OK.into()
        }
    }

    /// What `try_acquire(w)` gives now.
    pub fn try_take(self, w: u32) -> String {
        self.take(w, &format!("WouldBlock({w},{})", self.available()))
    }

    /// What `acquire_timeout(w, …)` gives now, if nobody releases meanwhile.
    pub fn timed_take(self, w: u32) -> String {
        self.take(w, &format!("Timeout({w})"))
    }

    /// What `set_capacity(cap)` gives: lowering it below the value revokes nothing.
    pub fn set_capacity(self, cap: u32) -> String {
        if cap == 0 { INVALID } else { OK }.into()
    }
}

/// What `exit(count)` gives on a handle that `enter`ed `entered` and has not exited it yet.
pub fn exit(count: u32, entered: u32) -> String {
    if count == 0 {
        INVALID.into()
    } else if count > entered {
        format!("NotHeld({count},{entered})")
    } else {
        OK.into()
    }
}

/// One semaphore as a listing shows it: its name, capacity and value.
pub type Listed = (String, u32, u32);

/// What `Namespace::list` showed, in its order, of the semaphores whose names `keep` selects.
pub fn listed(list: &[Info], keep: impl Fn(&str) -> bool) -> Vec<Listed> {
    list.iter()
        .filter(|i| keep(&i.name))
        .map(|i| (i.name.clone(), i.capacity, i.value))
        .collect()
}

/// What a listing of the `model`'s semaphores should show, in the model's order, each named by
/// `name_of`.
pub fn expected_listing<'a, K: Copy + 'a>(
    model: impl IntoIterator<Item = (&'a K, &'a Sem)>,
    name_of: impl Fn(K) -> String,
) -> Vec<Listed> {
    model
        .into_iter()
        .map(|(&n, s)| (name_of(n), s.capacity, s.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_of_zero_is_invalid_whatever_is_free() {
        assert_eq!(Sem::new(3).try_take(0), INVALID);
        assert_eq!(
            Sem {
                capacity: 3,
                value: 3
            }
            .timed_take(0),
            INVALID
        );
    }

    #[test]
    fn a_weight_above_the_capacity_is_too_large_even_when_nothing_is_held() {
        assert_eq!(Sem::new(3).try_take(4), "WeightTooLarge(4,3)");
        assert_eq!(Sem::new(3).timed_take(4), "WeightTooLarge(4,3)");
    }

    #[test]
    fn a_weight_that_fits_in_what_is_free_is_granted() {
        assert_eq!(Sem::new(3).try_take(3), OK);
        assert_eq!(
            Sem {
                capacity: 3,
                value: 1
            }
            .timed_take(2),
            OK
        );
    }

    #[test]
    fn a_weight_that_does_not_fit_now_blocks_with_what_is_free() {
        let s = Sem {
            capacity: 5,
            value: 3,
        };
        assert_eq!(s.try_take(3), "WouldBlock(3,2)");
        assert_eq!(s.timed_take(3), "Timeout(3)");
        assert_eq!(s.take(3, "blocks"), "blocks");
    }

    #[test]
    fn what_is_free_is_never_negative_after_the_capacity_is_lowered_below_the_value() {
        let s = Sem {
            capacity: 2,
            value: 4,
        };
        assert_eq!(s.available(), 0);
        assert_eq!(s.try_take(1), "WouldBlock(1,0)");
    }

    #[test]
    fn a_capacity_of_zero_is_refused_and_any_other_accepted() {
        let s = Sem {
            capacity: 3,
            value: 3,
        };
        assert_eq!(s.set_capacity(0), INVALID);
        assert_eq!(s.set_capacity(1), OK);
        assert_eq!(s.set_capacity(9), OK);
    }

    #[test]
    fn an_exit_gives_back_at_most_what_the_handle_entered() {
        assert_eq!(exit(0, 2), INVALID);
        assert_eq!(exit(3, 2), "NotHeld(3,2)");
        assert_eq!(exit(2, 2), OK);
        assert_eq!(exit(1, 0), "NotHeld(1,0)");
    }

    #[test]
    fn outcomes_name_the_error_and_its_numbers() {
        assert_eq!(outcome::<()>(&Ok(())), OK);
        let r: Result<(), Error> = Err(Error::WouldBlock {
            weight: 2,
            available: 1,
        });
        assert_eq!(outcome(&r), "WouldBlock(2,1)");
        let r: Result<(), Error> = Err(Error::Timeout {
            weight: 4,
            timeout_ms: 1,
        });
        assert_eq!(outcome(&r), "Timeout(4)");
        let r: Result<(), Error> = Err(Error::WeightTooLarge {
            weight: 5,
            capacity: 3,
        });
        assert_eq!(outcome(&r), "WeightTooLarge(5,3)");
        let r: Result<(), Error> = Err(Error::NotHeld { count: 2, held: 1 });
        assert_eq!(outcome(&r), "NotHeld(2,1)");
        let r: Result<(), Error> = Err(Error::InvalidArgument {
            reason: "weight 0".into(),
        });
        assert_eq!(outcome(&r), INVALID);
    }
}
