//! Cluster-file settings with their own syntax: a host's memory overcommit
//! (`false`, `true` or a ratio) and DRS (`drs:` with its `HH:MM-HH:MM`
//! window) and DPM (`dpm:` with its load band), each checked as it is read.

use crate::duration::Dur;
use serde::Deserialize;

/// A host's memory overcommit: `false` (off), `true` (FusionCompute's
/// switch on: 1.5) or a ratio from 1.0 to 3.0 — placement commits that
/// many times the host's memory. Kept as a percentage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryOvercommit(pub u32);

impl<'de> Deserialize<'de> for MemoryOvercommit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Setting;
        impl serde::de::Visitor<'_> for Setting {
            type Value = MemoryOvercommit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a ratio from 1.0 to 3.0 (such as 1.5)")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(MemoryOvercommit(if on {
                    krrish_core::model::MEMORY_OVERCOMMIT_ON
                } else {
                    krrish_core::model::MEMORY_OVERCOMMIT_OFF
                }))
            }
            fn visit_f64<E: serde::de::Error>(self, ratio: f64) -> Result<Self::Value, E> {
                let max = f64::from(krrish_core::model::MEMORY_OVERCOMMIT_MAX) / 100.0;
                if !(1.0..=max).contains(&ratio) {
                    return Err(E::custom(format!(
                        "memory_overcommit: {ratio} is out of range; expected true, false or a ratio from 1.0 to {max:.1}"
                    )));
                }
                Ok(MemoryOvercommit((ratio * 100.0).round() as u32))
            }
            fn visit_u64<E: serde::de::Error>(self, ratio: u64) -> Result<Self::Value, E> {
                self.visit_f64(ratio as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, ratio: i64) -> Result<Self::Value, E> {
                self.visit_f64(ratio as f64)
            }
        }
        d.deserialize_any(Setting)
    }
}

/// `drs:` in a cluster file; every field has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrsEntry {
    /// Act when the most and least loaded production hosts differ by more
    /// than this many percentage points (default 20, 1 to 100).
    pub threshold_percent: Option<u32>,
    /// Live migrations in flight at once (default 2, 1 to 64).
    pub max_concurrent: Option<u32>,
    /// How often it looks (default 5m).
    pub interval: Option<Dur>,
    /// The daily window (UTC) it may migrate in, `HH:MM-HH:MM`; absent,
    /// any time.
    pub window: Option<DrsWindowText>,
}

/// `HH:MM-HH:MM`, minutes after midnight UTC (across midnight when the
/// end is earlier than the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrsWindowText(pub krrish_core::ha::DrsWindow);

impl<'de> Deserialize<'de> for DrsWindowText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_window(&text).map(DrsWindowText).map_err(|why| {
            serde::de::Error::custom(format!(
                "drs.window: `{text}`: {why}; expected HH:MM-HH:MM (UTC), such as 22:00-06:00"
            ))
        })
    }
}

fn parse_window(text: &str) -> Result<krrish_core::ha::DrsWindow, String> {
    let minute = |t: &str| -> Result<u32, String> {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("`{t}` is not HH:MM"))?;
        let (h, m): (u32, u32) = (
            h.parse().map_err(|_| format!("`{h}` is not an hour"))?,
            m.parse().map_err(|_| format!("`{m}` is not a minute"))?,
        );
        if h > 23 || m > 59 {
            return Err(format!("`{t}` is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    let (from, to) = text
        .split_once('-')
        .ok_or_else(|| "no `-` between the start and the end".to_string())?;
    let (from_min, to_min) = (minute(from)?, minute(to)?);
    if from_min == to_min {
        return Err("the window is empty (start = end)".into());
    }
    Ok(krrish_core::ha::DrsWindow { from_min, to_min })
}

/// `dpm:` in a cluster file; every field has a default (vSphere DPM's
/// band: 45 and 81 per cent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpmEntry {
    /// Power a host off while the powered-on production hosts are less
    /// loaded than this (per cent, default 45)…
    pub low_percent: Option<u32>,
    /// …if the hosts left stay under this; above it, power one on
    /// (default 81).
    pub high_percent: Option<u32>,
    /// How often it considers a power-off (default 10m).
    pub interval: Option<Dur>,
    /// How long a powered-on host has to report before it is given up
    /// (default 10m).
    pub power_on_timeout: Option<Dur>,
}

impl DpmEntry {
    /// The core's settings, checked: 1 ≤ low < high ≤ 100, positive
    /// durations; an error names the field and what was expected.
    pub fn config(
        &self,
        src: &crate::load::Source,
    ) -> Result<krrish_core::ha::DpmConfig, crate::load::LoadError> {
        let d = krrish_core::ha::DpmConfig::default();
        let low = self.low_percent.unwrap_or(d.low_percent);
        let high = self.high_percent.unwrap_or(d.high_percent);
        for (key, v) in [("low_percent", low), ("high_percent", high)] {
            if !(1..=100).contains(&v) {
                return Err(src.error(
                    src.find(key, &v.to_string()),
                    format!("dpm.{key}: expected 1 to 100, not {v}"),
                ));
            }
        }
        if low >= high {
            return Err(src.error(
                src.find("high_percent", &high.to_string())
                    .or_else(|| src.find("low_percent", &low.to_string()))
                    .or_else(|| src.key_line("dpm")),
                format!("dpm: low_percent ({low}) must be below high_percent ({high}), or a host powered off for low load would be powered on again at once"),
            ));
        }
        let positive = |key: &str, v: Option<Dur>, default: u64| match v.map(|i| i.ms()) {
            Some(0) => Err(src.error(
                src.key_line(key).or_else(|| src.key_line("dpm")),
                format!("dpm.{key}: expected a positive duration such as 10m"),
            )),
            Some(ms) => Ok(ms),
            None => Ok(default),
        };
        Ok(krrish_core::ha::DpmConfig {
            low_percent: low,
            high_percent: high,
            interval_ms: positive("interval", self.interval, d.interval_ms)?,
            power_on_timeout_ms: positive(
                "power_on_timeout",
                self.power_on_timeout,
                d.power_on_timeout_ms,
            )?,
        })
    }
}
