//! One sort for every ordering the daemon makes: rows are ordered by integer keys computed
//! once each, and the pairs (key, index) sorted by a single non-generic function. Each
//! `sort_by_key` with a closure of its own compiles to another copy of the sort, 2–5 KB of the
//! daemon's binary apiece, against a cap.

use std::cmp::Ordering;

/// A key: compared as a pair, then by position (so equal keys keep their order).
pub type Key = (i64, i64);

/// Sorts `rows` by `key`, ascending; equal keys keep their order.
pub fn sort_by_key<T>(rows: &mut Vec<T>, key: impl Fn(&T) -> Key) {
    let keys = rows.iter().map(key).collect();
    let order = order(keys, usize::MAX);
    permute(rows, &order);
}

/// The positions of the `n` smallest keys, smallest first (ties by position). Not generic.
pub fn order(keys: Vec<Key>, n: usize) -> Vec<usize> {
    let mut at: Vec<(Key, usize)> = keys.into_iter().zip(0..).collect();
    let by = |a: &(Key, usize), b: &(Key, usize)| -> Ordering { a.cmp(b) };
    if n == 0 {
        return Vec::new();
    }
    if n < at.len() {
        at.select_nth_unstable_by(n - 1, by);
        at.truncate(n);
    }
    at.sort_unstable_by(by);
    at.into_iter().map(|(_, i)| i).collect()
}

/// Keeps the rows at `order`'s positions, in that order.
pub fn permute<T>(rows: &mut Vec<T>, order: &[usize]) {
    let mut slots: Vec<Option<T>> = rows.drain(..).map(Some).collect();
    rows.extend(
        order
            .iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take)),
    );
}

/// A float as an integer key that orders as [`f64::total_cmp`] does.
pub fn float_key(v: f64) -> i64 {
    let bits = v.to_bits().cast_signed();
    // Negative floats' bits order backwards: flip all but the sign.
    bits ^ ((bits >> 63).cast_unsigned() >> 1).cast_signed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably_by_key() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        sort_by_key(&mut v, |x| (x.0, 0));
        assert_eq!(v, [(1, 'b'), (1, 'e'), (2, 'd'), (3, 'a'), (3, 'c')]);
        assert_eq!(order(vec![(5, 0), (1, 0), (3, 0)], 2), [1, 2]);
        assert!(order(vec![(1, 0)], 0).is_empty());
    }

    #[test]
    fn float_keys_order_as_total_cmp() {
        let mut v = [
            3.5,
            -0.0,
            0.0,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -2.0,
            f64::NAN,
            -f64::NAN,
        ];
        let mut by_key = v.to_vec();
        sort_by_key(&mut by_key, |x| (float_key(*x), 0));
        v.sort_by(f64::total_cmp);
        let bits = |s: &[f64]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&by_key), bits(&v));
    }
}
