//! The parsers of option values: each turns one string into a checked value, or into a message
//! that clap reports as a usage error (exit status 2) before any semaphore is touched.

use std::time::Duration;

/// A semaphore or namespace name, checked by the library's rule.
pub fn name(s: &str) -> Result<String, String> {
    shmsem::validate_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A whole number from `min` to `max`.
fn ranged(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let expected = || format!("expected a whole number from {min} to {max}");
    let n: u64 = s.parse().map_err(|e| format!("{e} ({})", expected()))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range ({})", expected()));
    }
    Ok(n)
}

/// A capacity, weight or count: from 1 to the library's largest capacity (a weight or count
/// above it could never be granted or held).
pub fn capacity(s: &str) -> Result<u32, String> {
    ranged(s, 1, shmsem::Semaphore::MAX_CAPACITY.into()).map(|n| n as u32)
}

/// A process id: from 1 to the largest `pid_t`.
pub fn pid(s: &str) -> Result<u32, String> {
    ranged(s, 1, i32::MAX as u64).map(|n| n as u32)
}

/// An idle period in milliseconds, as the library stores it (32 bits).
pub fn idle_ms(s: &str) -> Result<u64, String> {
    ranged(s, 0, u32::MAX.into())
}

/// A file mode in octal (`0660`, `660` or `0o660`), at most `0777`.
pub fn octal_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err("expected an octal mode from 0 to 0777, such as 0660".to_owned()),
    }
}

/// A duration: a number of milliseconds (`250`), or a number with a unit, `ms`, `s`, `m` or `h`
/// (`250ms`, `2s`, `1.5s`, `1m`). The number is digits with an optional fraction; no sign.
pub fn duration(s: &str) -> Result<Duration, String> {
    const HELP: &str = "expected milliseconds or a number with a unit, such as 250, 250ms, 2s, \
                        1.5s, 1m or 1h";
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let well_formed = match number.split_once('.') {
        Some((whole, frac)) => !whole.is_empty() && !frac.is_empty() && !frac.contains('.'),
        None => !number.is_empty(),
    };
    if !well_formed {
        return Err(format!("{s:?} is not a duration ({HELP})"));
    }
    let seconds_per_unit = match unit {
        "" | "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} ({HELP})")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration ({HELP})"))?;
    let too_long = || format!("{s:?} is too long (at most {} hours)", MAX_DURATION_HOURS);
    let secs = value * seconds_per_unit;
    if !secs.is_finite() || secs > (MAX_DURATION_HOURS * 3600) as f64 {
        return Err(too_long());
    }
    let d = Duration::try_from_secs_f64(secs).map_err(|_| too_long())?;
    // Whole milliseconds, the resolution the library reports timeouts in.
    Ok(Duration::from_millis(
        u64::try_from(d.as_millis()).map_err(|_| too_long())?,
    ))
}

/// The longest duration accepted: a year and more, so that no deadline computation overflows.
const MAX_DURATION_HOURS: u64 = 10_000;

/// `watch --interval`: a duration from 100 ms to 60 s.
pub fn interval(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!(
            "{s:?} is out of range (expected from {} ms to {} s)",
            MIN_INTERVAL.as_millis(),
            MAX_INTERVAL.as_secs()
        ));
    }
    Ok(d)
}

/// The shortest `watch --interval`.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest `watch --interval`.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(octal_mode("0660"), Ok(0o660));
        assert_eq!(octal_mode("0o640"), Ok(0o640));
        assert_eq!(octal_mode("777"), Ok(0o777));
        for bad in ["", "0o", "0800", "1777", "rw", "-1"] {
            assert!(octal_mode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn capacities_stay_within_the_library_maximum() {
        let max = shmsem::Semaphore::MAX_CAPACITY;
        assert_eq!(capacity("1"), Ok(1));
        assert_eq!(capacity(&max.to_string()), Ok(max));
        for bad in [
            "0",
            &(max + 1).to_string(),
            "4294967295",
            "4294967296",
            "-1",
            "1.5",
        ] {
            assert!(capacity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pids_and_idle_periods_are_in_range() {
        assert_eq!(pid("1"), Ok(1));
        assert_eq!(pid("2147483647"), Ok(i32::MAX as u32));
        for bad in ["0", "2147483648", "-1", ""] {
            assert!(pid(bad).is_err(), "{bad:?}");
        }
        assert_eq!(idle_ms("0"), Ok(0));
        assert_eq!(idle_ms("4294967295"), Ok(u32::MAX.into()));
        assert!(idle_ms("4294967296").is_err());
    }

    #[test]
    fn durations_take_milliseconds_or_a_unit() {
        let ms = Duration::from_millis;
        for (s, d) in [
            ("0", ms(0)),
            ("250", ms(250)),
            ("250ms", ms(250)),
            ("2s", ms(2000)),
            ("1.5s", ms(1500)),
            ("0.5", ms(0)),
            ("1m", ms(60_000)),
            ("1h", ms(3_600_000)),
            ("0s", ms(0)),
        ] {
            assert_eq!(duration(s), Ok(d), "{s:?}");
        }
        for bad in [
            "",
            "s",
            "ms",
            "-1",
            "-1s",
            "+1s",
            "2x",
            "2 s",
            "1.",
            ".5s",
            "1.2.3s",
            "NaN",
            "nan",
            "inf",
            "1e3",
            "2sec",
            "2S",
            "99999999999999999999999",
            "1000000h",
        ] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intervals_are_between_100_ms_and_a_minute() {
        assert_eq!(interval("500"), Ok(Duration::from_millis(500)));
        assert_eq!(interval("1m"), Ok(Duration::from_secs(60)));
        for bad in ["99", "61s", "0", "2x"] {
            assert!(interval(bad).is_err(), "{bad:?}");
        }
    }
}
