//! Offline ranking metrics with one held-out movie per user: hit-rate@k,
//! NDCG@k and catalogue coverage, each with a 95 % confidence interval over
//! users. Every method of `recommender evaluate` is scored by this code
//! alone, whoever produced its lists.
//!
//! Hit-rate and NDCG are means over users: their interval is the bootstrap
//! percentile interval (users resampled with replacement). Coverage is not
//! a mean — a resample holds only ~63 % distinct users, so its coverage is
//! biased low and the percentile interval would miss the estimate — so its
//! interval is the normal one from a grouped delete-a-group jackknife
//! ([`JACKKNIFE_GROUPS`] random groups of users), which is centred on the
//! estimate and, like every jackknife, errs wide (measured against the exact
//! variance of a distinct count in the tests: ~1× at 1 000 users, ~1.9× once
//! coverage saturates).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::model::{MovieId, UserId};

/// Groups of users of the coverage jackknife.
pub const JACKKNIFE_GROUPS: usize = 20;

/// A point estimate with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The value on the full sample.
    pub value: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub low: f64,
    /// 97.5th percentile of the bootstrap distribution.
    pub high: f64,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.4} [{:.4}, {:.4}]", self.value, self.low, self.high)
    }
}

/// A method's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Share of users whose held-out movie is in their top k.
    pub hit_rate: Estimate,
    /// Mean NDCG@k (one relevant movie: `1/log2(rank + 1)` when hit, rank 1-based).
    pub ndcg: Estimate,
    /// Share of the catalogue appearing in at least one user's top k.
    pub coverage: Estimate,
    /// Users scored.
    pub users: usize,
}

/// Per-user outcome: the 0-based position of the held-out movie in the
/// first `k` of `list`, if there.
pub fn hit_position(list: &[MovieId], held_out: MovieId, k: usize) -> Option<usize> {
    list.iter().take(k).position(|m| *m == held_out)
}

/// NDCG@k of one user with a single relevant movie at `position` (0-based).
pub fn ndcg_at(position: Option<usize>) -> f64 {
    match position {
        // The ideal DCG is 1 (the movie at rank 1), so NDCG = DCG.
        Some(p) => 1.0 / ((p as f64) + 2.0).log2(),
        None => 0.0,
    }
}

/// Scores `lists` (each user's ranking, best first; only the first `k`
/// count) against `held_out` (the one movie per evaluated user), over a
/// catalogue of `catalogue` movies, with `resamples` bootstrap resamples of
/// the users drawn from `seed`. A user without a list scores a miss.
pub fn score(
    lists: &BTreeMap<UserId, Vec<MovieId>>,
    held_out: &BTreeMap<UserId, MovieId>,
    catalogue: usize,
    k: usize,
    resamples: usize,
    seed: u64,
) -> Scores {
    let empty = Vec::new();
    let users: Vec<&[MovieId]> = held_out
        .keys()
        .map(|u| {
            let l = lists.get(u).unwrap_or(&empty);
            &l[..l.len().min(k)]
        })
        .collect();
    let outcomes: Vec<Option<usize>> = held_out
        .iter()
        .zip(&users)
        .map(|((_, &h), l)| hit_position(l, h, k))
        .collect();
    let hits: Vec<f64> = outcomes
        .iter()
        .map(|p| if p.is_some() { 1.0 } else { 0.0 })
        .collect();
    let ndcgs: Vec<f64> = outcomes.iter().map(|p| ndcg_at(*p)).collect();

    // Movies get dense indices so a resample's coverage is a stamp array.
    let mut index: BTreeMap<MovieId, usize> = BTreeMap::new();
    let dense: Vec<Vec<usize>> = users
        .iter()
        .map(|l| {
            l.iter()
                .map(|m| {
                    let next = index.len();
                    *index.entry(*m).or_insert(next)
                })
                .collect()
        })
        .collect();
    let catalogue = catalogue.max(1) as f64;
    let n = users.len();
    let mut stamp = vec![usize::MAX; index.len()];
    let mut covered = |picks: &mut dyn Iterator<Item = usize>, mark: usize| -> f64 {
        let mut distinct = 0_usize;
        for u in picks {
            for &m in &dense[u] {
                if stamp[m] != mark {
                    stamp[m] = mark;
                    distinct += 1;
                }
            }
        }
        distinct as f64 / catalogue
    };
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    // Stamps: 0 for the full sample, 1 + g for the jackknife without group g.
    let full_coverage = covered(&mut (0..n), 0);
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut group: Vec<usize> = (0..n).map(|u| u % JACKKNIFE_GROUPS).collect();
    for i in (1..n).rev() {
        group.swap(i, rng.random_range(0..=i));
    }
    let leave_out: Vec<f64> = (0..JACKKNIFE_GROUPS.min(n))
        .map(|g| covered(&mut (0..n).filter(|u| group[*u] != g), 1 + g))
        .collect();
    let coverage = jackknife(full_coverage, &leave_out);

    let (mut boot_hit, mut boot_ndcg) =
        (Vec::with_capacity(resamples), Vec::with_capacity(resamples));
    let mut picks = vec![0_usize; n];
    for _ in 0..resamples {
        if n == 0 {
            break;
        }
        for p in picks.iter_mut() {
            *p = rng.random_range(0..n);
        }
        boot_hit.push(picks.iter().map(|&u| hits[u]).sum::<f64>() / n as f64);
        boot_ndcg.push(picks.iter().map(|&u| ndcgs[u]).sum::<f64>() / n as f64);
    }
    Scores {
        hit_rate: interval(mean(&hits), boot_hit),
        ndcg: interval(mean(&ndcgs), boot_ndcg),
        coverage,
        users: n,
    }
}

/// `value` ± 1.96 jackknife standard errors from the delete-a-group
/// estimates `leave_out`.
fn jackknife(value: f64, leave_out: &[f64]) -> Estimate {
    let g = leave_out.len() as f64;
    if leave_out.len() < 2 {
        return Estimate {
            value,
            low: value,
            high: value,
        };
    }
    let mean = leave_out.iter().sum::<f64>() / g;
    let var = (g - 1.0) / g * leave_out.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
    let half = 1.96 * var.sqrt();
    Estimate {
        value,
        low: value - half,
        high: value + half,
    }
}

/// The point estimate with the percentile interval of `boot`.
fn interval(value: f64, mut boot: Vec<f64>) -> Estimate {
    if boot.is_empty() {
        return Estimate {
            value,
            low: value,
            high: value,
        };
    }
    boot.sort_by(f64::total_cmp);
    let at = |q: f64| boot[((boot.len() - 1) as f64 * q).round() as usize];
    Estimate {
        value,
        low: at(0.025),
        high: at(0.975),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_and_ndcg_of_single_users() {
        assert_eq!(hit_position(&[5, 6, 7], 6, 10), Some(1));
        assert_eq!(hit_position(&[5, 6, 7], 7, 2), None, "past k is a miss");
        assert_eq!(ndcg_at(Some(0)), 1.0);
        assert!((ndcg_at(Some(1)) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(ndcg_at(None), 0.0);
    }

    #[test]
    fn hand_worked_sample() {
        // Four users: hit at rank 1, hit at rank 3, a miss, and no list.
        let lists: BTreeMap<UserId, Vec<MovieId>> =
            [(1, vec![10, 11]), (2, vec![12, 13, 20]), (3, vec![10, 14])]
                .into_iter()
                .collect();
        let held: BTreeMap<UserId, MovieId> =
            [(1, 10), (2, 20), (3, 99), (4, 10)].into_iter().collect();
        let s = score(&lists, &held, 100, 10, 200, 1);
        assert_eq!(s.users, 4);
        assert!((s.hit_rate.value - 0.5).abs() < 1e-12);
        assert!((s.ndcg.value - (1.0 + 0.5) / 4.0).abs() < 1e-12);
        // Distinct movies in the lists: 10, 11, 12, 13, 20, 14.
        assert!((s.coverage.value - 0.06).abs() < 1e-12);
        for e in [s.hit_rate, s.ndcg, s.coverage] {
            assert!(e.low <= e.value && e.value <= e.high, "{e}");
        }
        // k = 2 cuts user 2's hit.
        let s2 = score(&lists, &held, 100, 2, 0, 1);
        assert!((s2.hit_rate.value - 0.25).abs() < 1e-12);
        assert!((s2.coverage.value - 0.05).abs() < 1e-12);
    }

    #[test]
    fn intervals_cover_the_truth_95_percent_of_the_time_and_have_the_right_width() {
        // Users hit with probability 0.3, each hit/miss on its own movie so
        // coverage varies too. Over many samples the hit-rate interval
        // should hold 0.3 about 95 % of the time, and be about
        // ±1.96·sqrt(0.3·0.7/n) wide.
        let mut rng = Pcg64Mcg::seed_from_u64(9);
        let sample = |n: i64, rng: &mut Pcg64Mcg, seed: u64| {
            let mut lists = BTreeMap::new();
            let mut held = BTreeMap::new();
            for u in 0..n {
                held.insert(u, 1);
                let other = rng.random_range(2..5_000);
                lists.insert(
                    u,
                    if rng.random_bool(0.3) {
                        vec![1, other]
                    } else {
                        vec![other]
                    },
                );
            }
            score(&lists, &held, 5_000, 10, 300, seed)
        };
        let (reps, mut held_truth) = (200, 0);
        for r in 0..reps {
            let s = sample(300, &mut rng, r);
            held_truth += u32::from(s.hit_rate.low <= 0.3 && 0.3 <= s.hit_rate.high);
            let c = s.coverage;
            assert!(c.low < c.value && c.value < c.high, "coverage {c}");
        }
        assert!(
            (180..=197).contains(&held_truth),
            "{held_truth}/{reps} intervals hold 0.3"
        );
        let width = |e: Estimate| e.high - e.low;
        let (s1, s2) = (sample(1_000, &mut rng, 1), sample(16_000, &mut rng, 2));
        let normal = 2.0 * 1.96 * (0.21_f64 / 1_000.0).sqrt();
        let w1 = width(s1.hit_rate);
        assert!((w1 / normal - 1.0).abs() < 0.2, "{w1} vs {normal}");
        let ratio = w1 / width(s2.hit_rate);
        assert!((ratio - 4.0).abs() < 1.0, "width ∝ 1/sqrt(n): {ratio}");
        // Coverage: each user lists one random movie of 4 998 besides movie
        // 1, so the distinct count D of n draws from M has the exact variance
        // M·a^n + M(M−1)·b^n − M²·a^2n (a = 1 − 1/M, b = 1 − 2/M).
        for (s, n) in [(&s1, 1_000_f64), (&s2, 16_000.0)] {
            let m = 4_998_f64;
            let (a, b) = (1.0 - 1.0 / m, 1.0 - 2.0 / m);
            let var = m * a.powf(n) + m * (m - 1.0) * b.powf(n) - m * m * a.powf(2.0 * n);
            let sd = var.sqrt() / 5_000.0;
            let ratio = width(s.coverage) / (2.0 * 1.96 * sd);
            // The jackknife is known to be conservative: here up to ~2× wide
            // once coverage saturates (n = 16 000), close at n = 1 000.
            assert!(
                (0.6..2.5).contains(&ratio),
                "n = {n}: jackknife vs exact coverage width {ratio}"
            );
        }
    }
}
