//! The workload model: a seeded stream of timed review operations.
//!
//! * **Arrivals**: a non-homogeneous Poisson process with a diurnal rate
//!   `λ(t) = λ̄ · (1 + A·cos(2π (h(t) − 20) / 24))`, peak at 20:00, trough at
//!   08:00 (`A` = [`DIURNAL_AMPLITUDE`]), sampled exactly by thinning
//!   (Lewis–Shedler: candidates at the peak rate, each kept with probability
//!   `λ(t)/λmax`). A simulated day can be compressed into any wall-clock span.
//! * **Who**: users in proportion to their heavy-tailed activity weight from
//!   `cinerec-catalog` (alias method, O(1) per draw).
//! * **What**: with probability [`GENRE_AFFINITY`] a movie from one of the
//!   user's preferred genres, weighted by popularity within that genre;
//!   otherwise a movie by global Zipf popularity rank. Already-reviewed pairs
//!   are not avoided: real users re-review, and the model handles it.
//! * **Rating**: the J-shaped histogram of MovieLens 25M ([`RATING_SHARES`]),
//!   moved up half a star with probability [`TASTE_BONUS`] when the movie is in
//!   a preferred genre — taste is what makes co-occurrence informative.
//! * **Edits and deletes**: shares of all operations ([`WorkloadConfig`]),
//!   each aimed at a review created earlier in the run.

use std::time::Duration;

use cinerec_catalog::{Catalog, GENRES};
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;
use rand_pcg::Pcg64Mcg;

/// Relative swing of the diurnal arrival rate around its mean.
pub const DIURNAL_AMPLITUDE: f64 = 0.6;
/// Hour of the day with the highest arrival rate (evening viewing).
pub const PEAK_HOUR: f64 = 20.0;
/// Probability that a review is of a movie in one of the user's preferred genres.
pub const GENRE_AFFINITY: f64 = 0.6;
/// Probability of rating half a star higher when the movie is in a preferred genre.
pub const TASTE_BONUS: f64 = 0.35;
/// Approximate share of each rating (0.5 … 5.0 in half stars) in MovieLens 25M:
/// J-shaped, mode at 4.0, few low ratings.
pub const RATING_SHARES: [f64; 10] = [
    0.016, 0.031, 0.016, 0.066, 0.050, 0.196, 0.127, 0.266, 0.085, 0.147,
];

/// Shape of a run.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Seed of the synthetic world (same as the metadata seeders').
    pub world_seed: u64,
    /// Seed of this run's random choices.
    pub run_seed: u64,
    /// Movies and users in the world (as seeded).
    pub movies: u64,
    /// Users in the world.
    pub users: u64,
    /// Mean operations per second of wall-clock time.
    pub mean_rate: f64,
    /// How much wall-clock time one simulated day takes (compression).
    pub day_length: Duration,
    /// Simulated hour the run starts at.
    pub start_hour: f64,
    /// Share of operations that edit an earlier review.
    pub edit_share: f64,
    /// Share of operations that delete an earlier review.
    pub delete_share: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            world_seed: 1,
            run_seed: 1,
            movies: 50_000,
            users: 1_000_000,
            mean_rate: 100.0,
            day_length: Duration::from_secs(600),
            start_hour: 18.0,
            edit_share: 0.05,
            delete_share: 0.01,
        }
    }
}

/// One operation at `at` (offset from the run's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// When to send it, from the start of the run.
    pub at: Duration,
    /// What to send.
    pub kind: OpKind,
}

/// An operation on review-svc.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// A new review.
    Create {
        /// Author.
        user_id: i64,
        /// Movie.
        movie_id: i64,
        /// 0.5–5.0 in half stars.
        rating: f32,
    },
    /// A new rating for the `nth` review this run created (0-based).
    Edit {
        /// Index into the run's creations.
        nth: u64,
        /// New rating.
        rating: f32,
    },
    /// Deletes the `nth` review this run created.
    Delete {
        /// Index into the run's creations.
        nth: u64,
    },
}

/// The seeded stream of operations; an iterator without end (the driver
/// stops it by time or count).
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    catalog: Catalog,
    rng: Pcg64Mcg,
    users: WeightedAliasIndex<f64>,
    /// Per genre (index into [`GENRES`]): movie ids and a popularity alias table.
    by_genre: Vec<Option<(Vec<i64>, WeightedAliasIndex<f64>)>>,
    zipf: rand_distr::Zipf<f64>,
    ratings: WeightedAliasIndex<f64>,
    /// Simulated seconds since the run's start.
    sim_secs: f64,
    created: u64,
    /// Creations already deleted: never edited or deleted again (people
    /// don't edit what they retracted).
    deleted: std::collections::HashSet<u64>,
}

const DAY_SECS: f64 = 86_400.0;

impl Workload {
    /// Builds the samplers (O(users + movies) once).
    pub fn new(config: WorkloadConfig) -> Result<Workload, String> {
        if config.movies == 0
            || config.users == 0
            || config.mean_rate <= 0.0
            || config.day_length.is_zero()
        {
            return Err("movies, users, rate and day length must be positive".to_owned());
        }
        if config.edit_share + config.delete_share >= 1.0
            || config.edit_share < 0.0
            || config.delete_share < 0.0
        {
            return Err("edit and delete shares must be >= 0 and sum below 1".to_owned());
        }
        let catalog = Catalog::new(config.world_seed, config.movies, config.users);
        let activity: Vec<f64> = (1..=config.users as i64)
            .map(|id| catalog.user(id).activity)
            .collect();
        let users = WeightedAliasIndex::new(activity).map_err(|e| format!("user weights: {e}"))?;
        let mut genre_movies: Vec<(Vec<i64>, Vec<f64>)> =
            vec![(Vec::new(), Vec::new()); GENRES.len()];
        for id in 1..=config.movies as i64 {
            let m = catalog.movie(id);
            for g in &m.genres {
                if let Some(gi) = GENRES.iter().position(|(name, _)| name == g) {
                    genre_movies[gi].0.push(id);
                    genre_movies[gi].1.push(m.popularity);
                }
            }
        }
        let by_genre = genre_movies
            .into_iter()
            .map(|(ids, weights)| {
                if ids.is_empty() {
                    None
                } else {
                    WeightedAliasIndex::new(weights).ok().map(|w| (ids, w))
                }
            })
            .collect();
        let zipf = rand_distr::Zipf::new(config.movies as f64, cinerec_catalog::ZIPF_EXPONENT)
            .map_err(|e| format!("zipf: {e}"))?;
        let ratings =
            WeightedAliasIndex::new(RATING_SHARES.to_vec()).map_err(|e| format!("ratings: {e}"))?;
        Ok(Workload {
            rng: Pcg64Mcg::seed_from_u64(config.run_seed),
            catalog,
            users,
            by_genre,
            zipf,
            ratings,
            sim_secs: 0.0,
            created: 0,
            deleted: std::collections::HashSet::new(),
            config,
        })
    }

    /// Simulated seconds per wall-clock second.
    fn compression(&self) -> f64 {
        DAY_SECS / self.config.day_length.as_secs_f64()
    }

    /// The arrival rate (per wall-clock second) at simulated hour `hour`.
    pub fn rate_at(&self, hour: f64) -> f64 {
        let phase = 2.0 * std::f64::consts::PI * (hour - PEAK_HOUR) / 24.0;
        self.config.mean_rate * (1.0 + DIURNAL_AMPLITUDE * phase.cos())
    }

    fn hour(&self) -> f64 {
        (self.config.start_hour + self.sim_secs / 3600.0).rem_euclid(24.0)
    }

    fn rating(&mut self, in_taste: bool) -> f32 {
        let mut step = self.ratings.sample(&mut self.rng) as u8; // 0 ↔ 0.5 stars
        if in_taste && step < 9 && self.rng.random_bool(TASTE_BONUS) {
            step += 1;
        }
        f32::from(step + 1) / 2.0
    }

    /// A random earlier creation that is not deleted, if one is found in a
    /// few draws (almost always: deletes are rare).
    fn live_creation(&mut self) -> Option<u64> {
        if self.created == 0 {
            return None;
        }
        (0..8)
            .map(|_| self.rng.random_range(0..self.created))
            .find(|nth| !self.deleted.contains(nth))
    }

    fn create(&mut self) -> OpKind {
        let user_id = self.users.sample(&mut self.rng) as i64 + 1;
        let user = self.catalog.user(user_id);
        let preferred: Vec<usize> = user
            .preferred_genres
            .iter()
            .filter_map(|g| GENRES.iter().position(|(name, _)| name == g))
            .filter(|gi| self.by_genre[*gi].is_some())
            .collect();
        let (movie_id, in_taste) = if !preferred.is_empty() && self.rng.random_bool(GENRE_AFFINITY)
        {
            let gi = preferred[self.rng.random_range(0..preferred.len())];
            match &self.by_genre[gi] {
                Some((ids, weights)) => (ids[weights.sample(&mut self.rng)], true),
                None => (1, false),
            }
        } else {
            let rank = self.zipf.sample(&mut self.rng) as u64;
            let id = self.catalog.id_of_rank(rank.clamp(1, self.config.movies));
            let genres = self.catalog.movie(id).genres;
            (id, genres.iter().any(|g| user.preferred_genres.contains(g)))
        };
        let rating = self.rating(in_taste);
        self.created += 1;
        OpKind::Create {
            user_id,
            movie_id,
            rating,
        }
    }
}

impl Iterator for Workload {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let compression = self.compression();
        let max_rate = self.config.mean_rate * (1.0 + DIURNAL_AMPLITUDE);
        // Thinning: candidates at the peak rate (per simulated second), each
        // kept with probability λ(t)/λmax.
        loop {
            let gap: f64 = rand_distr::Exp::new(max_rate / compression)
                .map_or(1.0, |d| d.sample(&mut self.rng));
            self.sim_secs += gap;
            if self.rng.random::<f64>() * max_rate <= self.rate_at(self.hour()) {
                break;
            }
        }
        let at = Duration::from_secs_f64(self.sim_secs / compression);
        let roll: f64 = self.rng.random();
        // Only a live earlier creation can be edited or deleted.
        let kind = match self.live_creation() {
            Some(nth) if roll < self.config.delete_share => {
                self.deleted.insert(nth);
                OpKind::Delete { nth }
            }
            Some(nth) if roll < self.config.delete_share + self.config.edit_share => {
                let rating = self.rating(false);
                OpKind::Edit { nth, rating }
            }
            _ => self.create(),
        };
        Some(Op { at, kind })
    }
}

#[cfg(test)]
mod tests;
