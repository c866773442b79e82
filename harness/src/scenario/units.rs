//! Values as scenario files and the command line write them: durations (`"250ms"`,
//! `"10s"`, `"2m"`, `"4h"`, or a bare number of milliseconds), byte rates (`"10MB"`, `"5MiB"`), and
//! the rule every old → new broker map obeys. The loader and the CLI share these, so a
//! value means the same in both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Parses `"250ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"4h"`; `None` when malformed.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "ms"),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000.0,
        "m" | "min" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    };
    Some(Duration::from_micros((ms * 1000.0) as u64))
}

/// A byte rate as an operator writes it: `1048576`, `500kB`, `1MB`, `10MiB`, with or
/// without `/s` (kB/MB: 1000-based, KiB/MiB: 1024-based, as `kafka-reassign-partitions`
/// takes bytes). `None` when malformed or zero.
pub fn parse_byte_rate(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches("/s").trim();
    let i = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..i].parse().ok()?;
    let mult = match t[i..].trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 1.0).then_some(v as u64)
}

/// An old → new broker id map must be non-empty, one-to-one, and never map onto a broker
/// being replaced. The error says which rule it breaks.
pub fn check_broker_map(map: &BTreeMap<i32, i32>) -> Result<(), String> {
    if map.is_empty() {
        return Err("empty".into());
    }
    let new: BTreeSet<i32> = map.values().copied().collect();
    if new.len() != map.len() {
        return Err("two old brokers map to one new broker".into());
    }
    if let Some(b) = new.iter().find(|b| map.contains_key(b)) {
        return Err(format!("broker {b} is both old and new"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_rates() {
        assert_eq!(parse_byte_rate("1048576"), Some(1_048_576));
        assert_eq!(parse_byte_rate("1MB/s"), Some(1_000_000));
        assert_eq!(parse_byte_rate("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_byte_rate("500 kB"), Some(500_000));
        assert_eq!(parse_byte_rate("0"), None);
        assert_eq!(parse_byte_rate("fast"), None);
        assert_eq!(parse_byte_rate("1 lb"), None);
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("40"), Some(Duration::from_millis(40)));
        assert_eq!(parse_duration("ten seconds"), None);
        assert_eq!(parse_duration("4h"), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
