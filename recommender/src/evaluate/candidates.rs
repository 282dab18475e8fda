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

/// One candidate's lists (`rows` must be computed at `cand.gamma`).
pub fn lists(
    t: &Trained,
    rows: &Rows,
    cand: &Candidate,
    users: impl Iterator<Item = UserId>,
    k: usize,
) -> Lists {
    let m = &t.model;
    let n_max = t.popular.first().map_or(1.0, |p| f64::from(m.n(*p)));
    let exp_j = 1.0 - cand.alpha + cand.beta;
    users
        .map(|u| {
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
                    (j, w / (ni.powf(cand.alpha) * nj.powf(exp_j)) * c / (c + cand.lambda))
                });
                let scale = if cand.norm {
                    let max = contrib.clone().map(|(_, s)| s).fold(0.0, f64::max);
                    if max > 0.0 { 1.0 / max } else { 0.0 }
                } else {
                    1.0
                };
                for (j, s) in contrib {
                    if !m.has_seen(u, j) {
                        *scores.entry(j).or_insert(0.0) += s * scale;
                    }
                }
            }
            if cand.pop > 0.0 && likes <= cand.cold {
                let max = scores.values().copied().fold(0.0, f64::max);
                let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
                for s in scores.values_mut() {
                    *s *= scale;
                }
                for &p in t.popular.iter().take(CANDIDATES) {
                    if !m.has_seen(u, p) {
                        scores.entry(p).or_insert(0.0);
                    }
                }
                for (j, s) in &mut scores {
                    *s += cand.pop * f64::from(m.n(*j)) / n_max;
                }
            }
            let mut ranked: Vec<(MovieId, f64)> =
                scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let ranking: Vec<MovieId> = ranked.into_iter().take(k).map(|(j, _)| j).collect();
            (u, finish(m, u, &ranking, &t.popular, k))
        })
        .collect()
}
