//! The running agents, one slot per host: a host's slot is fixed when the
//! world is made, so a burst of one agent's outputs looks its name up once
//! and then indexes a vector.

use crate::world::Agent;
use krrish_core::HostId;
use std::collections::BTreeMap;

#[derive(Default)]
pub(crate) struct Agents {
    slot_of: BTreeMap<HostId, usize>,
    slots: Vec<Option<Agent>>,
}

impl Agents {
    /// Slots for `hosts` (every host the world will ever have).
    pub(crate) fn for_hosts<'a>(hosts: impl IntoIterator<Item = &'a HostId>) -> Self {
        let slot_of: BTreeMap<HostId, usize> = hosts
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        let slots = (0..slot_of.len()).map(|_| None).collect();
        Self { slot_of, slots }
    }

    /// The host's slot (whether or not its agent runs).
    pub(crate) fn slot(&self, host: &HostId) -> Option<usize> {
        self.slot_of.get(host).copied()
    }

    pub(crate) fn at_mut(&mut self, slot: usize) -> Option<&mut Agent> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    pub(crate) fn get(&self, host: &HostId) -> Option<&Agent> {
        self.slots[self.slot(host)?].as_ref()
    }

    pub(crate) fn contains_key(&self, host: &HostId) -> bool {
        self.get(host).is_some()
    }

    /// Starts `host`'s agent. Panics for a host the world was not made with.
    pub(crate) fn insert(&mut self, host: &HostId, agent: Agent) {
        let slot = self.slot(host).expect("a host of this world");
        self.slots[slot] = Some(agent);
    }

    pub(crate) fn remove(&mut self, host: &HostId) -> Option<Agent> {
        let slot = self.slot(host)?;
        self.slots[slot].take()
    }

    /// The hosts whose agents run, in id order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &HostId> {
        self.slot_of
            .iter()
            .filter(|(_, &i)| self.slots[i].is_some())
            .map(|(h, _)| h)
    }
}
