//! One value per recording: the shape of everything a comparison holds.
use serde::Serialize;

use crate::par;

/// Which recording of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Before, Side::After];

    /// "before" / "after", as the outputs name the recordings.
    pub fn label(self) -> &'static str {
        match self {
            Side::Before => "before",
            Side::After => "after",
        }
    }

    /// "BEFORE" / "AFTER", as titles and notes stress them.
    pub fn upper(self) -> &'static str {
        match self {
            Side::Before => "BEFORE",
            Side::After => "AFTER",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Before => Side::After,
            Side::After => Side::Before,
        }
    }
}

/// A value of the BEFORE recording and the same value of the AFTER one. Serialises as
/// `{"before": …, "after": …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pair<T> {
    pub before: T,
    pub after: T,
}

impl<T> Pair<T> {
    pub fn new(before: T, after: T) -> Pair<T> {
        Pair { before, after }
    }

    pub fn get(&self, side: Side) -> &T {
        match side {
            Side::Before => &self.before,
            Side::After => &self.after,
        }
    }

    pub fn as_ref(&self) -> Pair<&T> {
        Pair::new(&self.before, &self.after)
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Pair<U> {
        Pair::new(f(self.before), f(self.after))
    }

    pub fn zip<U>(self, other: Pair<U>) -> Pair<(T, U)> {
        Pair::new((self.before, other.before), (self.after, other.after))
    }

    /// `f` on both sides at once, one thread each (the sides do not depend on each other).
    pub fn par_map<U: Send>(self, f: impl Fn(T) -> U + Sync) -> Pair<U>
    where
        T: Send,
    {
        let (before, after) = (self.before, self.after);
        let (b, a) = par::both(|| f(before), || f(after));
        Pair::new(b, a)
    }

    /// (side, value), before first.
    pub fn sides(&self) -> [(Side, &T); 2] {
        [(Side::Before, &self.before), (Side::After, &self.after)]
    }
}

impl<A, B> Pair<(A, B)> {
    pub fn unzip(self) -> (Pair<A>, Pair<B>) {
        let ((b0, b1), (a0, a1)) = (self.before, self.after);
        (Pair::new(b0, a0), Pair::new(b1, a1))
    }
}

impl Pair<Option<f64>> {
    /// Both values, when each recording could show one.
    pub fn both(self) -> Option<Pair<f64>> {
        Some(Pair::new(self.before?, self.after?))
    }

    /// Either recording could show it.
    pub fn any(self) -> bool {
        self.before.is_some() || self.after.is_some()
    }

    /// `100 * (after - before) / before`; None when either is unknown or before is 0.
    pub fn change_pct(self) -> Option<f64> {
        match (self.before, self.after) {
            (Some(b), Some(a)) if b != 0.0 => Some(100.0 * (a - b) / b),
            _ => None,
        }
    }
}

impl Pair<f64> {
    /// `after - before`.
    pub fn delta(self) -> f64 {
        self.after - self.before
    }

    /// The larger of the two.
    pub fn max(self) -> f64 {
        self.before.max(self.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_pct_is_null_when_before_is_zero_or_unknown() {
        let p = |b, a| Pair::new(b, a).change_pct();
        assert_eq!(p(Some(0.0), Some(5.0)), None);
        assert_eq!(p(None, Some(5.0)), None);
        assert_eq!(p(Some(5.0), None), None);
        assert_eq!(p(Some(200.0), Some(50.0)), Some(-75.0));
    }

    #[test]
    fn both_needs_both_sides() {
        assert_eq!(
            Pair::new(Some(1.0), Some(2.0)).both(),
            Some(Pair::new(1.0, 2.0))
        );
        assert_eq!(Pair::new(Some(1.0), None).both(), None);
        assert!(Pair::new(None, Some(0.0)).any());
        assert!(!Pair::<Option<f64>>::new(None, None).any());
    }

    #[test]
    fn par_map_keeps_the_sides_apart() {
        let p = Pair::new(vec![1u64, 2], vec![3u64]).par_map(|v| v.iter().sum::<u64>());
        assert_eq!(p, Pair::new(3, 3));
        assert_eq!(Pair::new(2.0, 5.0).delta(), 3.0);
        assert_eq!(Side::After.other(), Side::Before);
    }
}
