//! Durations as scenario files write them: `"250ms"`, `"10s"`, `"2m"`, or a bare number of
//! milliseconds.

use std::time::Duration;

/// Parses `"250ms"`, `"10s"`, `"1.5s"`, `"2m"`; `None` when malformed.
pub fn parse(text: &str) -> Option<Duration> {
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
        _ => return None,
    };
    Some(Duration::from_micros((ms * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("40"), Some(Duration::from_millis(40)));
        assert_eq!(parse("ten seconds"), None);
        assert_eq!(parse("5h"), None);
        assert_eq!(parse("-1s"), None);
    }
}
