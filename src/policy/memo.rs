//! A bounded memo of composed `where` clauses.
//!
//! An Electric client sends its shape's `where` again on every request (the initial sync, each
//! live poll, each reconnect), and parsing, checking, composing, rendering and reading back that
//! text is most of the policy layer's CPU. The composed text is a pure function of the client's
//! text, its number of params, the visible columns, the row filter and the SQL limits, so the
//! memo keeps it keyed on all of them: a hit returns exactly what a miss computes. The row
//! filter's values are not part of the text (they travel as `params[n]`), so one entry serves
//! every principal.
//!
//! Bounded: texts longer than [`MAX_MEMO_TEXT`] are not kept, and a full memo is emptied. A
//! flood of distinct clauses therefore costs what it would cost without the memo.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use crate::protocol::{Identifier, SqlLimits};

use super::decision::RowFilter;

/// The longest client text kept; longer ones are composed on every request.
pub(crate) const MAX_MEMO_TEXT: usize = 4 * 1024;

/// The default number of composed clauses kept.
pub const DEFAULT_WHERE_MEMO_CAPACITY: usize = 1024;

/// Everything the composed text depends on.
#[derive(Clone, Copy)]
pub(crate) struct WhereInputs<'a> {
    pub(crate) client: &'a str,
    pub(crate) param_count: usize,
    pub(crate) visible: Option<&'a [Identifier]>,
    pub(crate) filter: Option<&'a RowFilter>,
    pub(crate) limits: SqlLimits,
}

impl WhereInputs<'_> {
    fn hash_with(&self, hasher: &impl BuildHasher) -> u64 {
        hasher.hash_one((
            self.client,
            self.param_count,
            self.visible,
            self.filter.map(RowFilter::sql),
            self.limits.max_len,
            self.limits.max_depth,
        ))
    }
}

/// One kept clause, with the inputs it was composed from (compared in full on every hit, so a
/// hash collision is a miss, never another clause).
struct Entry {
    client: Box<str>,
    param_count: usize,
    visible: Option<Box<[Identifier]>>,
    filter: Option<RowFilter>,
    limits: SqlLimits,
    composed: Arc<str>,
}

impl Entry {
    fn matches(&self, inputs: &WhereInputs<'_>) -> bool {
        *self.client == *inputs.client
            && self.param_count == inputs.param_count
            && self.visible.as_deref() == inputs.visible
            && self.filter.as_ref() == inputs.filter
            && self.limits == inputs.limits
    }
}

/// The entries, keyed by the hash of their inputs ([`WhereInputs::hash_with`]).
type Entries = HashMap<u64, Entry, BuildHasherDefault<AlreadyHashed>>;

/// The map's hasher: its keys are already keyed hashes of the inputs, so hashing them again
/// would only cost time (a second SipHash per request).
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (the keys are `u64`); any other input is folded in.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// The memo, shared by every clone of a policy service.
pub(crate) struct WhereMemo {
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    entries: Mutex<Entries>,
}

impl WhereMemo {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hasher: Default::default(),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The composed text for `inputs`: kept, or made by `compose` and kept.
    pub(crate) fn get_or_compose<E>(
        &self,
        inputs: WhereInputs<'_>,
        compose: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        if self.capacity == 0 || inputs.client.len() > MAX_MEMO_TEXT {
            return compose().map(Arc::from);
        }
        let hash = inputs.hash_with(&self.hasher);
        if let Some(entry) = self.lock().get(&hash) {
            if entry.matches(&inputs) {
                return Ok(Arc::clone(&entry.composed));
            }
        }
        // Composed outside the lock: parsing is the slow part this memo exists to skip.
        let composed: Arc<str> = Arc::from(compose()?);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                client: inputs.client.into(),
                param_count: inputs.param_count,
                visible: inputs.visible.map(Into::into),
                filter: inputs.filter.cloned(),
                limits: inputs.limits,
                composed: Arc::clone(&composed),
            },
        );
        Ok(composed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map is valid after any panic elsewhere: entries are inserted whole.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl std::fmt::Debug for WhereMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhereMemo")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn inputs<'a>(client: &'a str, visible: Option<&'a [Identifier]>) -> WhereInputs<'a> {
        WhereInputs {
            client,
            param_count: 0,
            visible,
            filter: None,
            limits: SqlLimits::default(),
        }
    }

    #[test]
    fn a_repeated_clause_is_composed_once() {
        let memo = WhereMemo::new(8);
        let calls = Cell::new(0);
        let compose = || {
            calls.set(calls.get() + 1);
            Ok::<_, ()>("(a) AND (b)".to_owned())
        };
        assert_eq!(
            &*memo.get_or_compose(inputs("a", None), compose).unwrap(),
            "(a) AND (b)"
        );
        assert_eq!(
            &*memo.get_or_compose(inputs("a", None), compose).unwrap(),
            "(a) AND (b)"
        );
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn any_other_input_is_a_miss() {
        let memo = WhereMemo::new(8);
        let calls = Cell::new(0);
        let compose = || {
            calls.set(calls.get() + 1);
            Ok::<_, ()>(calls.get().to_string())
        };
        let visible = [Identifier::parse("id").unwrap()];
        let filter = RowFilter::parse("owner = $1").unwrap();
        let base = inputs("id = 1", None);
        memo.get_or_compose(base, compose).unwrap();
        for changed in [
            inputs("id = 2", None),
            inputs("id = 1", Some(&visible)),
            WhereInputs {
                param_count: 1,
                ..base
            },
            WhereInputs {
                filter: Some(&filter),
                ..base
            },
            WhereInputs {
                limits: SqlLimits::new(10, 2),
                ..base
            },
        ] {
            let before = calls.get();
            memo.get_or_compose(changed, compose).unwrap();
            assert_eq!(calls.get(), before + 1);
        }
    }

    #[test]
    fn refusals_and_long_texts_are_not_kept_and_a_full_memo_empties() {
        let memo = WhereMemo::new(2);
        assert!(memo
            .get_or_compose(inputs("bad", None), || Err(()))
            .is_err());
        assert_eq!(memo.len(), 0);
        let long = "x".repeat(MAX_MEMO_TEXT + 1);
        memo.get_or_compose(inputs(&long, None), || Ok::<_, ()>(String::new()))
            .unwrap();
        assert_eq!(memo.len(), 0);
        for text in ["a", "b", "c"] {
            memo.get_or_compose(inputs(text, None), || Ok::<_, ()>(text.to_owned()))
                .unwrap();
        }
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let memo = WhereMemo::new(0);
        memo.get_or_compose(inputs("a", None), || Ok::<_, ()>("a".to_owned()))
            .unwrap();
        assert_eq!(memo.len(), 0);
    }
}
