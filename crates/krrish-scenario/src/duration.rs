//! Durations as people write them: `30s`, `2m`, `1h30m`, `500ms`, `1.5s`,
//! or a bare number of seconds.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// Milliseconds of simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub u64);

impl Dur {
    pub fn ms(self) -> u64 {
        self.0
    }
}

/// Parses `1h30m`, `45s`, `250ms`, `1.5s`, `90` (seconds).
pub fn parse_duration(s: &str) -> Result<Dur, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("'{s}': number without a unit (use ms, s, m, h or d)"))?;
        if num_len == 0 {
            return Err(format!("'{s}': expected a number before '{rest}'"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("'{s}': '{}' is not a number", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => return Err(format!("'{s}': unknown unit '{u}' (use ms, s, m, h or d)")),
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    from_secs(total, s)
}

fn from_secs(secs: f64, s: &str) -> Result<Dur, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}': a duration must be zero or positive"));
    }
    if secs > 1e9 {
        return Err(format!("'{s}': longer than any run we can simulate"));
    }
    Ok(Dur((secs * 1000.0).round() as u64))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 2m, 1h30m, 500ms, or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                from_secs(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                from_secs(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                from_secs(v, &v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        for (s, ms) in [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("90", 90_000),
        ] {
            assert_eq!(parse_duration(s), Ok(Dur(ms)), "{s}");
        }
        for bad in ["", "10x", "s", "-5", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }
}
