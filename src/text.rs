//! Wording shared by every message: counts and durations as a person reads them, so
//! error messages, logs and reports say them the same way.

use std::time::Duration;

/// Longer than any deployment waits: what an overlong duration is cut to, so adding it to
/// the clock can never overflow (`--lock-timeout 18446744073709551615` means forever).
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// "1 migration", "2 migrations".
pub fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A duration as a person reads it, rounded to what matters at its size: `250ms`,
/// `19.9s`, `1m30s`, `2h5m`, `3d4h`; never humantime's `19s 987ms 966us`. Every duration
/// shown to a person (messages, not the `duration_ms` fields) goes through this.
pub fn duration(d: std::time::Duration) -> String {
    const MINUTE: u128 = 60;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    // Each size rounds at its own unit first, so 59.96s becomes 1m, not 60.0s.
    let ms = (d.as_micros() + 500) / 1000;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return match tenths % 10 {
            0 => format!("{}s", tenths / 10),
            t => format!("{}.{t}s", tenths / 10),
        };
    }
    let pair = |big: u128, big_unit: &str, small: u128, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        s => format!("{big}{big_unit}{s}{small_unit}"),
    };
    let seconds = (ms + 500) / 1000;
    if seconds < HOUR {
        return pair(seconds / MINUTE, "m", seconds % MINUTE, "s");
    }
    let minutes = (seconds + MINUTE / 2) / MINUTE;
    if minutes * MINUTE < DAY {
        return pair(minutes / 60, "h", minutes % 60, "m");
    }
    let hours = (seconds + HOUR / 2) / HOUR;
    pair(hours / 24, "d", hours % 24, "h")
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_rounded_for_people() {
        use std::time::Duration;
        let cases = [
            (Duration::ZERO, "0ms"),
            (Duration::from_micros(400), "0ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(999_600), "1s"),
            (Duration::from_millis(1000), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_micros(19_949_000), "19.9s"),
            (Duration::from_micros(19_987_966), "20s"),
            (Duration::from_millis(59_960), "1m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(90_400), "1m30s"),
            (Duration::from_secs(15 * 60), "15m"),
            (Duration::from_secs(3599), "59m59s"),
            (Duration::from_millis(3_599_700), "1h"),
            (Duration::from_secs(2 * 3600 + 5 * 60 + 10), "2h5m"),
            (Duration::from_secs(2 * 3600 + 5 * 60 + 40), "2h6m"),
            (Duration::from_secs(24 * 3600 - 20), "1d"),
            (Duration::from_secs(3 * 86400 + 4 * 3600 + 100), "3d4h"),
            (crate::text::FOREVER, "36500d"),
        ];
        for (d, shown) in cases {
            assert_eq!(super::duration(d), shown, "{d:?}");
        }
    }
}
