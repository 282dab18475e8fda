//! Measured-only scoring candidates (issue 15 point 4, round 2): variants of
//! the served similarity scored from the same trained model's `C` and `N`,
//! never served. A candidate's score of movie `j` for user `u` is
//!
//! ```text
//! score(u, j) = Σ_{i liked by u} row(i, j)
//! row(i, j)   = W(i,j) / (N(i)^α · N(j)^(1-α+β)) · C(i,j) / (C(i,j) + λ)
//!               [divided by max_j row(i, j) when `norm`]
//! W(i,j)      = Σ_{users v liking i and j} n(v)^-γ       (C(i,j) when γ = 0)
//! ```
//!
//! with `n(v)` the number of training likes of `v` (IDF-style: a user who
//! likes everything says little about any pair). α = ½, β = γ = 0 and no
//! `norm` is the served shrunk cosine. For users with at most `cold`
//! training likes, `pop` > 0 blends in popularity:
//! `score / max score + pop · N(j) / max N` over the model's candidates and
//! the most popular movies.

use std::collections::HashMap;

use anyhow::{Context, bail};

use super::{CANDIDATES, Lists, Trained, finish};
use crate::model::{MovieId, UserId};

/// One candidate's parameters (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Shrinkage λ of `C/(C+λ)`.
    pub lambda: f64,
    /// Exponent α of `N(i)` (½: the cosine).
    pub alpha: f64,
    /// Extra popularity damping β of the target `N(j)`.
    pub beta: f64,
    /// User weight exponent γ of `n(v)^-γ`.
    pub gamma: f64,
    /// Divide each liked movie's row by its maximum.
    pub norm: bool,
    /// Weight of the popularity blend.
    pub pop: f64,
    /// The blend applies to users with at most this many training likes.
    pub cold: usize,
}

impl Default for Candidate {
    /// The served similarity (λ = 25).
    fn default() -> Candidate {
        Candidate {
            lambda: crate::model::SHRINKAGE,
            alpha: 0.5,
            beta: 0.0,
            gamma: 0.0,
            norm: false,
            pop: 0.0,
            cold: 1,
        }
    }
}

impl Candidate {
    /// Parses `key=value,...` (keys `lambda`, `alpha`, `beta`, `gamma`,
    /// `norm` (0/1), `pop`, `cold`); unnamed keys keep [`Candidate::default`].
    pub fn parse(spec: &str) -> anyhow::Result<Candidate> {
        let mut c = Candidate::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("candidate {spec:?}: {part:?} is not key=value"))?;
            let number = || -> anyhow::Result<f64> {
                let v: f64 = value
                    .trim()
                    .parse()
                    .with_context(|| format!("candidate {spec:?}: {key} = {value:?}"))?;
                if !v.is_finite() || v < 0.0 {
                    bail!("candidate {spec:?}: {key} must be finite and >= 0");
                }
                Ok(v)
            };
            match key.trim() {
                "lambda" => c.lambda = number()?,
                "alpha" => c.alpha = number()?,
                "beta" => c.beta = number()?,
                "gamma" => c.gamma = number()?,
                "norm" => c.norm = number()? != 0.0,
                "pop" => c.pop = number()?,
                "cold" => {
                    c.cold = value
                        .trim()
                        .parse()
                        .with_context(|| format!("candidate {spec:?}: cold = {value:?}"))?;
                }
                other => bail!("candidate {spec:?}: unknown key {other:?}"),
            }
        }
        if c.alpha > 1.0 {
            bail!("candidate {spec:?}: alpha must be in [0, 1]");
        }
        Ok(c)
    }

    /// The table row's name.
    pub fn name(&self) -> String {
        let mut name = format!("cinerec candidate: lambda={}", self.lambda);
        if self.alpha != 0.5 {
            let _ = std::fmt::Write::write_fmt(&mut name, format_args!(" alpha={}", self.alpha));
        }
        for (key, value) in [("beta", self.beta), ("gamma", self.gamma)] {
            if value != 0.0 {
                let _ = std::fmt::Write::write_fmt(&mut name, format_args!(" {key}={value}"));
            }
        }
        if self.norm {
            name.push_str(" row-max-norm");
        }
        if self.pop > 0.0 {
            let _ = std::fmt::Write::write_fmt(
                &mut name,
                format_args!(" pop={} (users <= {} training likes)", self.pop, self.cold),
            );
        }
        name
    }
}

/// One co-liked neighbour of a row: `(j, C(i,j), W(i,j))`.
type Neighbour = (MovieId, f64, f64);

/// The trained model's rows, read once and shared by every candidate.
#[derive(Debug)]
pub struct Rows {
    rows: HashMap<MovieId, Vec<Neighbour>>,
    /// `W` at the γ it was computed for.
    gamma: f64,
}

impl Rows {
    /// Reads every row `C(i, ·)` of the model, with `W` at `gamma`.
    pub fn new(t: &Trained, gamma: f64) -> Rows {
        let m = &t.model;
        let mut weighted: HashMap<(MovieId, MovieId), f64> = HashMap::new();
        if gamma != 0.0 {
            for v in m.users_with_likes() {
                let liked: Vec<MovieId> = m.liked_by(v).collect();
                let count = u32::try_from(liked.len()).unwrap_or(u32::MAX);
                let w = f64::from(count).powf(-gamma);
                for &i in &liked {
                    for &j in &liked {
                        if i != j {
                            *weighted.entry((i, j)).or_insert(0.0) += w;
                        }
                    }
                }
            }
        }
        let rows = m
            .liked_movies()
            .map(|i| {
                let row = m
                    .co_liked(i)
                    .map(|j| {
                        let c = f64::from(m.c(i, j));
                        let w = if gamma == 0.0 {
                            c
                        } else {
                            weighted.get(&(i, j)).copied().unwrap_or(0.0)
                        };
                        (j, c, w)
                    })
                    .collect();
                (i, row)
            })
            .collect();
        Rows { rows, gamma }
    }

    /// The γ this `W` was computed for.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

/// A user's candidate scores, best first (ties by id), positive only:
/// every co-liked movie they have not seen, plus with the popularity blend
/// the most popular unseen ones.
pub fn scores(t: &Trained, rows: &Rows, cand: &Candidate, u: UserId) -> Vec<(MovieId, f64)> {
    let m = &t.model;
    let n_max = t.popular.first().map_or(1.0, |p| f64::from(m.n(*p)));
    let exp_j = 1.0 - cand.alpha + cand.beta;
    // At α = ½, β = 0 the served evaluation order, so the default candidate
    // gives `Model::recommend`'s bits (a unit test checks the lists).
    let cosine = cand.alpha == 0.5 && cand.beta == 0.0;
    let mut scores: HashMap<MovieId, f64> = HashMap::new();
    let mut likes = 0usize;
    for i in m.liked_by(u) {
        likes += 1;
        let ni = f64::from(m.n(i));
        let Some(row) = rows.rows.get(&i) else {
            continue;
        };
        let contrib = row.iter().map(|&(j, c, w)| {
            let nj = f64::from(m.n(j));
            let denominator = if cosine {
                (ni * nj).sqrt()
            } else {
                ni.powf(cand.alpha) * nj.powf(exp_j)
            };
            (j, w / denominator * c / (c + cand.lambda))
        });
        let scale = if cand.norm {
            let max = contrib.clone().map(|(_, s)| s).fold(0.0, f64::max);
            if max > 0.0 { 1.0 / max } else { 0.0 }
        } else {
            1.0
        };
        for (j, s) in contrib {
            if !m.has_seen(u, j) {
                *scores.entry(j).or_insert(0.0) += if cand.norm { s * scale } else { s };
            }
        }
    }
    if cand.pop > 0.0 && likes <= cand.cold {
        let max = scores.values().copied().fold(0.0, f64::max);
        let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
        for &p in t.popular.iter().take(CANDIDATES) {
            if !m.has_seen(u, p) {
                scores.entry(p).or_insert(0.0);
            }
        }
        for (j, s) in &mut scores {
            *s = *s * scale + cand.pop * f64::from(m.n(*j)) / n_max;
        }
    }
    let mut ranked: Vec<(MovieId, f64)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// One candidate's lists (`rows` must be computed at `cand.gamma`): its
/// [`scores`] cut at `k`, seen movies dropped, topped up from popularity.
pub fn lists(
    t: &Trained,
    rows: &Rows,
    cand: &Candidate,
    users: impl Iterator<Item = UserId>,
    k: usize,
) -> Lists {
    users
        .map(|u| {
            let ranking: Vec<MovieId> = scores(t, rows, cand, u)
                .into_iter()
                .take(k)
                .map(|(j, _)| j)
                .collect();
            (u, finish(&t.model, u, &ranking, &t.popular, k))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Split, cinerec_lists, history, split, train};
    use super::*;
    use crate::model::ReviewState;

    fn like(review: u128, user: UserId, movie: MovieId) -> ReviewState {
        ReviewState {
            review_id: review,
            user_id: user,
            movie_id: movie,
            rating: 5.0,
            version: 1,
            changed_at_us: i64::try_from(review).unwrap_or(0),
            deleted: false,
        }
    }

    /// u1 likes {1, 2}, u2 {1, 2, 3}, u3 {2, 3}, u4 {1}: N(1) = 3, N(2) = 3,
    /// N(3) = 2, C(1,2) = 2 (u1, u2), C(1,3) = 1 (u2); n(u1) = 2, n(u2) = 3.
    fn four_users() -> Trained {
        let likes = [
            (1, 1),
            (1, 2),
            (2, 1),
            (2, 2),
            (2, 3),
            (3, 2),
            (3, 3),
            (4, 1),
        ];
        let train_states = likes
            .iter()
            .zip(1..)
            .map(|(&(u, m), r)| like(r, u, m))
            .collect();
        train(&Split {
            train: train_states,
            ..Split::default()
        })
    }

    fn close(got: &[(MovieId, f64)], want: &[(MovieId, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for ((gj, gs), (wj, ws)) in got.iter().zip(want) {
            assert_eq!(gj, wj, "{got:?} vs {want:?}");
            assert!((gs - ws).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn hand_worked_scores_of_user_4() {
        let t = four_users();
        let plain = Rows::new(&t, 0.0);
        let weighted = Rows::new(&t, 1.0);
        let cand = |spec: &str| Candidate::parse(spec).unwrap();
        // The served form at λ = 1: 2/sqrt(3·3) · 2/3 = 4/9, 1/sqrt(3·2) · 1/2.
        close(
            &scores(&t, &plain, &cand("lambda=1"), 4),
            &[(2, 4.0 / 9.0), (3, 0.5 / 6f64.sqrt())],
        );
        // α = 1 (C/N(i)): 2/3 · 2/3 = 4/9 and 1/3 · 1/2 = 1/6.
        close(
            &scores(&t, &plain, &cand("lambda=1,alpha=1"), 4),
            &[(2, 4.0 / 9.0), (3, 1.0 / 6.0)],
        );
        // γ = 1: W(1,2) = 1/2 + 1/3 = 5/6, W(1,3) = 1/3;
        // (5/6)/3 · 2/3 = 5/27 and (1/3)/3 · 1/2 = 1/18.
        let idf = cand("lambda=1,alpha=1,gamma=1");
        close(
            &scores(&t, &weighted, &idf, 4),
            &[(2, 5.0 / 27.0), (3, 1.0 / 18.0)],
        );
        // Row-max normalisation: 1 and (1/18)/(5/27) = 0.3.
        let norm = cand("lambda=1,alpha=1,gamma=1,norm=1");
        close(&scores(&t, &weighted, &norm, 4), &[(2, 1.0), (3, 0.3)]);
        // Popularity blend for a one-like user, max N = 3:
        // 1 + 0.5 · 3/3 = 1.5 and 0.3 + 0.5 · 2/3.
        let blend = cand("lambda=1,alpha=1,gamma=1,norm=1,pop=0.5");
        close(
            &scores(&t, &weighted, &blend, 4),
            &[(2, 1.5), (3, 0.3 + 1.0 / 3.0)],
        );
        // ... and not for u3, who has two training likes (cold = 1): u3
        // has seen 2 and 3, so only 1 is left, from both rows.
        let u3 = scores(&t, &weighted, &blend, 3);
        let u3_plain = scores(&t, &weighted, &norm, 3);
        close(&u3, &u3_plain);
    }

    #[test]
    fn the_default_candidate_is_model_recommend() {
        let args = super::super::Args::small(800, 1_200, 50_000);
        let (states, creations) = history(&args).unwrap();
        let split = split(states, creations);
        let t = train(&split);
        let users = || split.held_out.keys().copied();
        let rows = Rows::new(&t, 0.0);
        assert_eq!(
            lists(&t, &rows, &Candidate::default(), users(), args.k),
            cinerec_lists(&t, users(), args.k)
        );
        let other = Candidate::parse("alpha=0.8,norm=1").unwrap();
        assert_ne!(
            lists(&t, &rows, &other, users(), args.k),
            cinerec_lists(&t, users(), args.k)
        );
    }

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        let c = Candidate::parse("lambda=40, alpha=0.8,gamma=1,norm=1,pop=0.5,cold=2").unwrap();
        assert_eq!(
            c,
            Candidate {
                lambda: 40.0,
                alpha: 0.8,
                beta: 0.0,
                gamma: 1.0,
                norm: true,
                pop: 0.5,
                cold: 2,
            }
        );
        assert_eq!(Candidate::parse("").unwrap(), Candidate::default());
        for bad in [
            "lambda", "lambda=x", "alpha=2", "beta=-1", "nope=1", "cold=1.5",
        ] {
            assert!(Candidate::parse(bad).is_err(), "{bad}");
        }
    }
}
