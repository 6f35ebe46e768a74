//! A list of items per key, read on the scan's hot path: what a pattern
//! found is used for, which leaves an entity feeds. Nearly every key has
//! exactly one item, which is kept in the key's own slot, so a lookup in a
//! rule set of 100,000 entities costs one cache miss instead of two (the
//! slot, then a `Vec`'s heap block). Longer lists are stored together.
//!
//! Pure, immutable once built.

/// One key's slot.
#[derive(Debug, Clone, Copy)]
enum Slot<T> {
    Empty,
    One(T),
    /// `items[start..start + len]`.
    Many {
        start: u32,
        len: u32,
    },
}

/// Lists of `T` indexed by `0..len()`.
#[derive(Debug)]
pub(super) struct InlineLists<T> {
    slots: Vec<Slot<T>>,
    items: Vec<T>,
}

impl<T: Copy> InlineLists<T> {
    /// The list of key `key`; empty for a key past the end.
    #[inline]
    pub(super) fn get(&self, key: usize) -> &[T] {
        match self.slots.get(key) {
            None | Some(Slot::Empty) => &[],
            Some(Slot::One(item)) => std::slice::from_ref(item),
            Some(&Slot::Many { start, len }) => &self.items[start as usize..(start + len) as usize],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

impl<T: Copy> FromIterator<Vec<T>> for InlineLists<T> {
    /// Key `i` gets the `i`-th list.
    fn from_iter<I: IntoIterator<Item = Vec<T>>>(lists: I) -> Self {
        let mut slots = Vec::new();
        let mut items = Vec::new();
        for list in lists {
            let slot = match list.as_slice() {
                [] => Slot::Empty,
                [item] => Slot::One(*item),
                more => {
                    let start = items.len() as u32;
                    items.extend_from_slice(more);
                    Slot::Many {
                        start,
                        len: more.len() as u32,
                    }
                }
            };
            slots.push(slot);
        }
        InlineLists { slots, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_its_own_list_back() {
        let lists = vec![vec![], vec![7u32], vec![1, 2, 3], vec![9], vec![4, 5]];
        let inline: InlineLists<u32> = lists.clone().into_iter().collect();
        assert_eq!(inline.len(), lists.len());
        for (key, list) in lists.iter().enumerate() {
            assert_eq!(inline.get(key), list.as_slice(), "key {key}");
        }
        assert_eq!(inline.get(lists.len()), &[] as &[u32]);
    }
}
