//! The hits of every leaf of every rule on one article, as a scan collects
//! them: for each leaf with any, its (word span, entity) list in the order
//! found.
//!
//! One flat vector holds every hit, each linked to the next hit of its leaf,
//! so collecting them costs a few growing vectors per article, not one
//! allocation per leaf (an article hits hundreds of leaves at 10,000 rules;
//! at 100,000, glibc's malloc and free were a fifth of a scan).
//!
//! Pure: no I/O, cannot fail.

use std::collections::hash_map::Entry;

use super::ruleset::{EntityIdx, LeafId, TokenSpan};
use super::words::FastMap;

/// The end of a leaf's chain of hits.
const NO_HIT: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct LeafHits {
    /// Leaf -> its index in `groups`.
    index: FastMap<LeafId, u32>,
    /// One per leaf with hits, in the order of their first hit.
    groups: Vec<Group>,
    hits: Vec<Hit>,
}

#[derive(Debug)]
struct Group {
    leaf: LeafId,
    first: u32,
    last: u32,
}

#[derive(Debug)]
struct Hit {
    span: TokenSpan,
    /// The entity, when the hit is one of its aliases.
    entity: Option<EntityIdx>,
    /// The next hit of the same leaf, or [`NO_HIT`].
    next: u32,
}

impl LeafHits {
    /// Room for about `hits` hits, so that collecting them does not grow
    /// the vectors and the index step by step (each growth a `realloc`).
    pub(super) fn with_capacity(hits: usize) -> Self {
        LeafHits {
            index: FastMap::with_capacity_and_hasher(hits / 2, Default::default()),
            groups: Vec::with_capacity(hits / 2),
            hits: Vec::with_capacity(hits),
        }
    }

    /// Adds a hit of `leaf`, after those it has.
    pub(super) fn push(&mut self, leaf: LeafId, span: TokenSpan, entity: Option<EntityIdx>) {
        let hit = self.hits.len() as u32;
        self.hits.push(Hit {
            span,
            entity,
            next: NO_HIT,
        });
        match self.index.entry(leaf) {
            Entry::Occupied(group) => {
                let group = &mut self.groups[*group.get() as usize];
                self.hits[group.last as usize].next = hit;
                group.last = hit;
            }
            Entry::Vacant(slot) => {
                slot.insert(self.groups.len() as u32);
                self.groups.push(Group {
                    leaf,
                    first: hit,
                    last: hit,
                });
            }
        }
    }

    /// The leaves with at least one hit.
    pub(super) fn leaves(&self) -> impl Iterator<Item = LeafId> + '_ {
        self.groups.iter().map(|group| group.leaf)
    }

    /// The hits of `leaf`, in the order added; `None` when it has none.
    pub(super) fn get(
        &self,
        leaf: LeafId,
    ) -> Option<impl Iterator<Item = (TokenSpan, Option<EntityIdx>)> + '_> {
        let group = &self.groups[*self.index.get(&leaf)? as usize];
        Some(self.chain(group))
    }

    /// Every hit, leaf by leaf: (leaf, span, entity).
    pub(super) fn iter(&self) -> impl Iterator<Item = (LeafId, TokenSpan, Option<EntityIdx>)> + '_ {
        self.groups.iter().flat_map(move |group| {
            self.chain(group)
                .map(move |(span, entity)| (group.leaf, span, entity))
        })
    }

    /// The hits of `group`, following its chain.
    fn chain(&self, group: &Group) -> impl Iterator<Item = (TokenSpan, Option<EntityIdx>)> + '_ {
        let mut next = group.first;
        std::iter::from_fn(move || {
            let hit = self.hits.get(next as usize)?;
            next = hit.next;
            Some((hit.span, hit.entity))
        })
    }

    /// The hits that `keep` accepts, in the same order.
    pub(super) fn filtered(&self, mut keep: impl FnMut(LeafId, TokenSpan) -> bool) -> LeafHits {
        let mut kept = LeafHits::default();
        for (leaf, span, entity) in self.iter() {
            if keep(leaf, span) {
                kept.push(leaf, span, entity);
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u32, last: u32) -> TokenSpan {
        TokenSpan { first, last }
    }

    #[test]
    fn each_leaf_gets_its_own_hits_in_the_order_added() {
        let mut hits = LeafHits::default();
        hits.push(7, span(0, 0), None);
        hits.push(3, span(1, 2), Some(4));
        hits.push(7, span(5, 5), Some(9));
        hits.push(7, span(2, 2), None);
        let of = |leaf| hits.get(leaf).map(|found| found.collect::<Vec<_>>());
        assert_eq!(
            of(7),
            Some(vec![
                (span(0, 0), None),
                (span(5, 5), Some(9)),
                (span(2, 2), None)
            ])
        );
        assert_eq!(of(3), Some(vec![(span(1, 2), Some(4))]));
        assert_eq!(of(1), None);
        assert_eq!(hits.leaves().collect::<Vec<_>>(), vec![7, 3]);
    }

    #[test]
    fn filtering_keeps_order_and_drops_leaves_left_without_hits() {
        let mut hits = LeafHits::default();
        hits.push(1, span(0, 0), None);
        hits.push(2, span(3, 3), None);
        hits.push(1, span(8, 9), Some(0));
        let kept = hits.filtered(|_, span| span.first > 2);
        assert_eq!(
            kept.iter().collect::<Vec<_>>(),
            vec![(1, span(8, 9), Some(0)), (2, span(3, 3), None)]
        );
        assert!(kept.get(1).is_some() && kept.filtered(|leaf, _| leaf != 1).get(1).is_none());
    }
}
