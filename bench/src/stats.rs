//! Medians with their min–max spread over repeats, and ratios between them.

use serde::{Deserialize, Serialize};

/// The median of some repeats with the smallest and largest value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, ignoring NaN; `None` when nothing is left.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `median (min–max)` with `digits` decimals, e.g. `1234 (1200–1300)`.
    pub fn display(&self, digits: usize) -> String {
        if self.n == 1 || self.min == self.max {
            format!("{:.digits$}", self.median)
        } else {
            format!(
                "{:.digits$} ({:.digits$}–{:.digits$})",
                self.median, self.min, self.max
            )
        }
    }
}

/// Ratio of two paired series (same repeat), as a spread over the repeats:
/// `a[i] / b[i]` for each i where both exist and `b[i]` is not zero.
pub fn paired_ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<Spread> {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y != 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    Spread::of(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn paired_ratio_skips_missing_repeats() {
        let r = paired_ratio(
            &[Some(50.0), None, Some(90.0)],
            &[Some(100.0), Some(1.0), Some(100.0)],
        )
        .unwrap();
        assert_eq!((r.min, r.max, r.n), (0.5, 0.9, 2));
    }

    #[test]
    fn display_shows_the_range_only_when_there_is_one() {
        assert_eq!(Spread::of(&[5.0]).unwrap().display(0), "5");
        assert_eq!(
            Spread::of(&[1.0, 2.0, 3.0]).unwrap().display(1),
            "2.0 (1.0–3.0)"
        );
    }
}
