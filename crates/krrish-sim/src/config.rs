//! [`SimConfig`]: what every simulated world is configured with (seed,
//! network, HA settings, physical timings, checker grace).

use crate::world::Timings;
use krrish_core::HaConfig;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// The turmoil world's step (timers inside a host fire at their exact
    /// time; network delivery is quantised to the tick); the event world
    /// runs its checkers this often.
    pub tick_ms: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub ha: HaConfig,
    pub timings: Timings,
    /// How long the control plane may believe something false (checkers).
    pub belief_grace_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            tick_ms: 100,
            latency_min_ms: 1,
            latency_max_ms: 5,
            ha: HaConfig::default(),
            timings: Timings::default(),
            belief_grace_ms: 60_000,
        }
    }
}
