//! An independent oracle for the per-user top-20: a second, deliberately
//! plain computation of DESIGN.md §5 from the raw review states.
//!
//! # Why it exists
//!
//! Reconcile used to check `recommendations_by_user` against
//! [`Model::recommend`](crate::model::Model::recommend) of a model rebuilt
//! from the reviews: the scoring code checked itself, so a bug in it (a wrong
//! formula, a seen movie not skipped, a bad tie-break) produced the same wrong
//! answer on both sides and reconciled clean. [`recommend_all`] recomputes
//! every user's list on another code path, and reconcile diffs the tables
//! against it.
//!
//! # What it does not share with the model
//!
//! Nothing of the model's scoring path: not `Model`, not `model::batch`, not
//! `top_k`, not the private `recency` order, not its hash maps. Only the
//! input type [`ReviewState`] and the three documented constants
//! ([`LIKE_THRESHOLD`] = 4.0, [`TOP_N`] = 20, [`SHRINKAGE`] λ = 25) are
//! imported. Everything is
//! `BTreeMap`s and loops, in this order:
//!
//! 1. latest state per review: highest `version`;
//! 2. a user's rating of a movie: among the live (not deleted) latest states
//!    of that (user, movie), the greatest `(changed_at, version, review_id)`;
//!    such a movie is *seen* (never recommended back);
//! 3. likes: rating ≥ 4.0; `N(i)` = likers of `i`; `C(i, j)` = users liking
//!    both (counted per user over pairs of their likes);
//! 4. score of unseen `j` for user `u` = Σ over liked `i` of the shrunk
//!    cosine `C(i, j) / sqrt(N(i)·N(j)) · C(i, j) / (C(i, j) + λ)`; only
//!    scores > 0 are candidates;
//! 5. order: score descending, then movie id ascending.
//!
//! It is indexed (C is kept per movie) rather than O(users × movies²), so it
//! runs at reconcile's sizes. The trending top-up is not computed: reconcile
//! compares only the `from_model` prefix of a row.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{LIKE_THRESHOLD, MovieId, ReviewId, ReviewState, SHRINKAGE, TOP_N, UserId};

/// Every user's full candidate list (all unseen movies with a positive
/// score), best first; users with no candidates are absent. Take the first
/// [`TOP_N`] for the top-20; reconcile keeps the whole list so a tie at the
/// cut can be judged.
pub fn recommend_all(
    states: impl IntoIterator<Item = ReviewState>,
) -> BTreeMap<UserId, Vec<(MovieId, f64)>> {
    // 1. Latest state per review.
    let mut latest: BTreeMap<ReviewId, ReviewState> = BTreeMap::new();
    for s in states {
        let newer = match latest.get(&s.review_id) {
            None => true,
            Some(have) => s.version > have.version,
        };
        if newer {
            latest.insert(s.review_id, s);
        }
    }

    // 2. The rating that counts per (user, movie), written out in full.
    let mut rating: BTreeMap<(UserId, MovieId), ReviewState> = BTreeMap::new();
    for s in latest.values() {
        if s.deleted {
            continue;
        }
        let key = (s.user_id, s.movie_id);
        let replace = match rating.get(&key) {
            None => true,
            Some(h) => {
                if s.changed_at_us != h.changed_at_us {
                    s.changed_at_us > h.changed_at_us
                } else if s.version != h.version {
                    s.version > h.version
                } else {
                    s.review_id > h.review_id
                }
            }
        };
        if replace {
            rating.insert(key, *s);
        }
    }
    let mut seen: BTreeMap<UserId, BTreeSet<MovieId>> = BTreeMap::new();
    let mut likes: BTreeMap<UserId, BTreeSet<MovieId>> = BTreeMap::new();
    for (&(user, movie), s) in &rating {
        seen.entry(user).or_default().insert(movie);
        if s.rating >= LIKE_THRESHOLD {
            likes.entry(user).or_default().insert(movie);
        }
    }

    // 3. N and C (both orders, so C[i] lists every j co-liked with i).
    let mut n: BTreeMap<MovieId, u64> = BTreeMap::new();
    let mut c: BTreeMap<MovieId, BTreeMap<MovieId, u64>> = BTreeMap::new();
    for liked in likes.values() {
        for &i in liked {
            *n.entry(i).or_insert(0) += 1;
            for &j in liked {
                if i != j {
                    *c.entry(i).or_default().entry(j).or_insert(0) += 1;
                }
            }
        }
    }

    // 4 and 5. Per user: sum, drop seen and non-positive, sort.
    let no_seen = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (&user, liked) in &likes {
        let user_seen = seen.get(&user).unwrap_or(&no_seen);
        let mut score: BTreeMap<MovieId, f64> = BTreeMap::new();
        for &i in liked {
            let Some(row) = c.get(&i) else { continue };
            let ni = n.get(&i).copied().unwrap_or(0) as f64;
            for (&j, &cij) in row {
                if user_seen.contains(&j) {
                    continue;
                }
                let nj = n.get(&j).copied().unwrap_or(0) as f64;
                if ni == 0.0 || nj == 0.0 {
                    continue;
                }
                let cij = cij as f64;
                let cosine = cij / (ni * nj).sqrt();
                let trust = cij / (cij + SHRINKAGE);
                *score.entry(j).or_insert(0.0) += cosine * trust;
            }
        }
        let mut list: Vec<(MovieId, f64)> = score.into_iter().filter(|(_, s)| *s > 0.0).collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if !list.is_empty() {
            out.insert(user, list);
        }
    }
    out
}

/// The top-[`TOP_N`] of one user from [`recommend_all`]'s result.
pub fn top(all: &BTreeMap<UserId, Vec<(MovieId, f64)>>, user: UserId) -> &[(MovieId, f64)] {
    match all.get(&user) {
        Some(list) => &list[..list.len().min(TOP_N)],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::model::Model;
    use crate::reconcile::compare_recommendations;

    fn random_history(seed: u64) -> Vec<ReviewState> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for n in 0..rng.random_range(50..400) {
            // Few reviews, users and movies: edits, moves, deletes and
            // duplicate (user, movie) reviews all happen.
            let review_id = rng.random_range(0..120u128);
            out.push(ReviewState {
                review_id,
                user_id: rng.random_range(0..25),
                movie_id: rng.random_range(0..40),
                rating: f32::from(rng.random_range(1..=10u8)) / 2.0,
                version: rng.random_range(1..6),
                changed_at_us: rng.random_range(0..50),
                deleted: rng.random_bool(0.1),
            });
            if n % 7 == 0 {
                // A redelivery.
                if let Some(last) = out.last().copied() {
                    out.push(last);
                }
            }
        }
        out
    }

    #[test]
    fn hand_worked_scores() {
        let s = |review_id, user_id, movie_id, rating| ReviewState {
            review_id,
            user_id,
            movie_id,
            rating,
            version: 1,
            changed_at_us: 0,
            deleted: false,
        };
        // Users 1, 2 like 10 and 20; user 3 likes 10 only and rated 30 low.
        let all = recommend_all([
            s(1, 1, 10, 5.0),
            s(2, 1, 20, 4.0),
            s(3, 2, 10, 4.5),
            s(4, 2, 20, 5.0),
            s(5, 3, 10, 4.0),
            s(6, 3, 30, 2.0),
        ]);
        // N(10) = 3, N(20) = 2, C(10, 20) = 2: user 3 gets 20 at the cosine
        // 2/sqrt(3·2) = 0.8165 times the shrinkage 2/(2 + 25) = 0.0741,
        // 4/(27·sqrt(6)) = 0.06048.
        let got = top(&all, 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 20);
        assert!((got[0].1 - 4.0 / (27.0 * 6f64.sqrt())).abs() < 1e-12);
        assert!((got[0].1 - 0.06048).abs() < 1e-5);
        // Users 1 and 2 have seen everything co-liked.
        assert!(top(&all, 1).is_empty() && top(&all, 2).is_empty());
    }

    #[test]
    fn random_histories_oracle_top20_equals_model_recommend() {
        let mut compared = 0;
        for seed in 0..60 {
            let states = random_history(seed);
            let mut model = Model::new();
            for s in &states {
                model.apply(*s);
            }
            let oracle = recommend_all(states.iter().copied());
            for user in 0..25 {
                let full = oracle.get(&user).cloned().unwrap_or_default();
                let from_model = model.recommend(user, TOP_N);
                assert_eq!(
                    compare_recommendations(&full, &from_model),
                    Ok(()),
                    "seed {seed} user {user}"
                );
                // The ids are the same list too (no near-ties in this data
                // beyond exact ones, which both break by id).
                let ids: Vec<MovieId> = top(&oracle, user).iter().map(|m| m.0).collect();
                let model_ids: Vec<MovieId> = from_model.iter().map(|m| m.0).collect();
                assert_eq!(ids, model_ids, "seed {seed} user {user}");
                compared += usize::from(!full.is_empty());
            }
        }
        assert!(compared > 100, "only {compared} non-empty lists compared");
    }

    #[test]
    fn a_scoring_bug_is_caught() {
        // The first random history with a user whose top three scores are
        // distinct, so a reorder is a real difference, not a tie.
        let distinct =
            |l: &[(MovieId, f64)]| l.len() >= 3 && l[0].1 > l[1].1 * 1.01 && l[1].1 > l[2].1 * 1.01;
        let oracle = (0..200)
            .map(|seed| recommend_all(random_history(seed)))
            .find(|all| all.values().any(|l| distinct(l)))
            .unwrap_or_default();
        let Some((user, full)) = oracle.iter().find(|(_, l)| distinct(l)) else {
            panic!("no random history gave three distinct scores");
        };
        // A model that scored by another formula (here the squares of the
        // true scores: same candidates, different values) ...
        let mut bug: Vec<(MovieId, f64)> = full.iter().map(|(m, s)| (*m, s * s)).collect();
        bug.truncate(TOP_N);
        assert!(
            compare_recommendations(full, &bug).is_err(),
            "user {user}: squared scores reconciled clean"
        );
        // ... and one that swaps the first two movies.
        let mut swapped: Vec<(MovieId, f64)> = full.iter().copied().take(TOP_N).collect();
        swapped.swap(0, 1);
        assert!(compare_recommendations(full, &swapped).is_err());
    }
}
