//! The in-memory revocation list (one process; the database keeps the durable record).

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Mutex;

use super::Held;

#[derive(Default)]
struct State {
    entries: HashMap<String, Held>,
    /// Every generation up to this one is here; `None` until the first fill.
    watermark: Option<i64>,
    /// Generations above the watermark that arrived before the ones below them.
    pending: BTreeSet<i64>,
}

impl State {
    fn merge(&mut self, fields: &[(String, Held)]) {
        for (field, held) in fields {
            let merged = self.entries.get(field).map_or(*held, |h| h.merge(*held));
            self.entries.insert(field.clone(), merged);
        }
    }

    fn advance(&mut self) {
        let Some(mut watermark) = self.watermark else {
            return;
        };
        self.pending.retain(|g| *g > watermark);
        while self.pending.remove(&(watermark + 1)) {
            watermark += 1;
        }
        self.watermark = Some(watermark);
    }
}

/// Entries by field (`jti:<id>`, `sid:<id>`, `sub:<id>`) with the list's watermark.
#[derive(Default)]
pub struct MemoryList {
    state: Mutex<State>,
}

impl MemoryList {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Merges a publish's entries; its generations (every one of `generations`: a
    /// group's are consecutive) join the pending ones and the watermark climbs while the
    /// next is there. A list with no watermark keeps none (and remembers no generation):
    /// only a fill sets one. [`super::redis`]'s merge script is the twin, and a property
    /// test holds them together.
    pub(crate) fn publish(&self, fields: &[(String, Held)], generations: RangeInclusive<i64>) {
        let mut state = self.state();
        state.merge(fields);
        if state.watermark.is_none() {
            return;
        }
        state.pending.extend(generations);
        state.advance();
    }

    /// Entries, watermark and pending generations, for the twin test.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> (BTreeMap<String, Held>, Option<i64>, BTreeSet<i64>) {
        let state = self.state();
        let entries = state.entries.iter().map(|(f, h)| (f.clone(), *h)).collect();
        (entries, state.watermark, state.pending.clone())
    }

    pub(crate) fn fill(&self, fields: &[(String, Held)], generation: i64) {
        let mut state = self.state();
        state.merge(fields);
        state.watermark = Some(state.watermark.map_or(generation, |w| w.max(generation)));
        state.advance();
    }

    /// A mirror's update: entries merged, and the watermark raised to `watermark` (which
    /// the source reached with every entry up to it, all of them given to this list).
    pub(crate) fn copy(&self, fields: &[(String, Held)], watermark: Option<i64>) {
        let mut state = self.state();
        state.merge(fields);
        if let Some(w) = watermark {
            state.watermark = Some(state.watermark.map_or(w, |old| old.max(w)));
        }
    }

    pub(crate) fn read<F: AsRef<str>>(&self, fields: &[F]) -> (Option<i64>, Vec<Option<Held>>) {
        let state = self.state();
        let held = fields
            .iter()
            .map(|f| state.entries.get(f.as_ref()).copied())
            .collect();
        (state.watermark, held)
    }

    pub(crate) fn purge(&self, now: i64) {
        self.state().entries.retain(|_, h| h.expires_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(expires_at: i64) -> Held {
        Held {
            expires_at,
            cutoff: 0,
        }
    }

    #[test]
    fn the_watermark_waits_for_a_generation_that_arrives_late() {
        let list = MemoryList::default();
        let f = |n: &str| {
            [
                format!("jti:{n}"),
                "sid:x".to_owned(),
                "sub:x".to_owned(),
                "tenant:x".to_owned(),
            ]
        };
        assert_eq!(list.read(&f("a")).0, None, "never filled");
        list.fill(&[], 5);
        list.publish(&[("jti:b".into(), held(10))], 7..=7);
        assert_eq!(list.read(&f("b")).0, Some(5), "6 has not arrived");
        list.publish(&[("jti:a".into(), held(10))], 6..=6);
        assert_eq!(list.read(&f("a")).0, Some(7));
        list.fill(&[], 9);
        assert_eq!(list.read(&f("a")).0, Some(9));
        list.publish(&[("jti:c".into(), held(10))], 11..=13);
        assert_eq!(list.read(&f("c")).0, Some(9), "10 has not arrived");
        list.publish(&[], 10..=10);
        assert_eq!(
            list.read(&f("c")).0,
            Some(13),
            "a group's generations, all at once"
        );
        list.purge(10);
        assert_eq!(list.read(&f("a")).1[0], None);
    }
}
