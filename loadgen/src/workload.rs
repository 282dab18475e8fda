//! The workload model: a seeded stream of timed review operations.
//!
//! * **Arrivals**: a non-homogeneous Poisson process with a diurnal rate
//!   `λ(t) = λ̄ · (1 + A·cos(2π (h(t) − 20) / 24))`, peak at 20:00, trough at
//!   08:00 (`A` = [`DIURNAL_AMPLITUDE`]), sampled exactly by thinning
//!   (Lewis–Shedler: candidates at the peak rate, each kept with probability
//!   `λ(t)/λmax`). A simulated day can be compressed into any wall-clock span.
//! * **Who**: users in proportion to their heavy-tailed activity weight from
//!   `cinerec-catalog` (alias method, O(1) per draw).
//! * **What**: with probability [`CLUSTER_AFFINITY`] a movie of one of the
//!   user's taste clusters (the primary with probability [`PRIMARY_SHARE`]),
//!   weighted by popularity^[`CLUSTER_POPULARITY_EXPONENT`] within the
//!   cluster; with probability
//!   [`GENRE_AFFINITY`] a movie from one of the user's preferred genres,
//!   weighted by popularity within that genre; otherwise (the noise) a movie
//!   by global Zipf popularity rank. Already-reviewed pairs are not avoided:
//!   real users re-review, and the model handles it.
//! * **Rating**: first whether it is a like (≥ 4★): with probability
//!   [`LIKE_IN_CLUSTER`] for a movie of the user's clusters, [`LIKE_OUTSIDE`]
//!   otherwise, plus [`TASTE_BONUS`] when the movie is in a preferred genre;
//!   then the star value from the J-shaped histogram of MovieLens 25M
//!   ([`RATING_SHARES`]) restricted to likes or to the rest. Taste is what
//!   makes co-occurrence informative; the histogram keeps ratings realistic.
//! * **Edits and deletes**: shares of all operations ([`WorkloadConfig`]),
//!   each aimed at a review created earlier in the run.

use std::time::Duration;

use cinerec_catalog::{Catalog, GENRES, TASTE_CLUSTERS};
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;
use rand_pcg::Pcg64Mcg;

/// Relative swing of the diurnal arrival rate around its mean.
pub const DIURNAL_AMPLITUDE: f64 = 0.6;
/// Hour of the day with the highest arrival rate (evening viewing).
pub const PEAK_HOUR: f64 = 20.0;
/// Probability that a review is of a movie of one of the user's taste clusters.
pub const CLUSTER_AFFINITY: f64 = 0.5;
/// Within a cluster, movies are picked in proportion to `popularity^this`.
/// 1.0: popular titles lead inside every cluster as they do globally. A
/// flatter 0.5 (fans going deep into a niche) was tried: with ~125 titles a
/// cluster, every method's hit-rate fell to ~0.1 and popularity won, a world
/// where nothing is learnable from a few likes.
pub const CLUSTER_POPULARITY_EXPONENT: f64 = 1.0;
/// Share of cluster reviews that go to the user's primary cluster.
pub const PRIMARY_SHARE: f64 = 0.75;
/// Probability that a review is of a movie picked by one of the user's
/// preferred genres (the rest, `1 − CLUSTER_AFFINITY − GENRE_AFFINITY`, is
/// picked by global popularity: the noise).
pub const GENRE_AFFINITY: f64 = 0.35;
/// Probability that a review of a movie of one of the user's clusters is a like.
pub const LIKE_IN_CLUSTER: f64 = 0.75;
/// Probability that a review of any other movie is a like.
pub const LIKE_OUTSIDE: f64 = 0.3;
/// Added to the like probability when the movie is in a preferred genre.
pub const TASTE_BONUS: f64 = 0.05;
/// Ratings at or above this (in half-star steps, 0 ↔ 0.5★) are likes: 4.0★.
const LIKE_STEP: usize = 7;
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
    /// Per user (index `id − 1`): its clusters and preferred genres as a bit
    /// set over [`GENRES`], so a draw needs no `Catalog::user`.
    user_taste: Vec<([u32; 2], u32)>,
    /// Per genre (index into [`GENRES`]): movie ids and a popularity alias table.
    by_genre: Vec<Option<(Vec<i64>, WeightedAliasIndex<f64>)>>,
    /// Per taste cluster: movie ids and a popularity alias table.
    by_cluster: Vec<Option<(Vec<i64>, WeightedAliasIndex<f64>)>>,
    /// Per movie (index `id − 1`): its cluster and its genres as a bit set
    /// over [`GENRES`], so a draw needs no `Catalog::movie`.
    movie_taste: Vec<(u32, u32)>,
    zipf: rand_distr::Zipf<f64>,
    /// [`RATING_SHARES`] over the like steps (4★–5★), and over the rest.
    like_ratings: WeightedAliasIndex<f64>,
    other_ratings: WeightedAliasIndex<f64>,
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
        let (activity, user_taste): (Vec<f64>, Vec<([u32; 2], u32)>) = (1..=config.users as i64)
            .map(|id| {
                let u = catalog.user(id);
                (u.activity, (u.clusters, genre_bits(&u.preferred_genres)))
            })
            .unzip();
        let users = WeightedAliasIndex::new(activity).map_err(|e| format!("user weights: {e}"))?;
        let mut genre_movies: Vec<(Vec<i64>, Vec<f64>)> =
            vec![(Vec::new(), Vec::new()); GENRES.len()];
        let mut cluster_movies: Vec<(Vec<i64>, Vec<f64>)> =
            vec![(Vec::new(), Vec::new()); TASTE_CLUSTERS as usize];
        let mut movie_taste = Vec::with_capacity(config.movies as usize);
        for id in 1..=config.movies as i64 {
            let m = catalog.movie(id);
            for g in &m.genres {
                if let Some(gi) = GENRES.iter().position(|(name, _)| name == g) {
                    genre_movies[gi].0.push(id);
                    genre_movies[gi].1.push(m.popularity);
                }
            }
            let genre_bits = genre_bits(&m.genres);
            let cluster = m.cluster();
            cluster_movies[cluster as usize].0.push(id);
            cluster_movies[cluster as usize]
                .1
                .push(m.popularity.powf(CLUSTER_POPULARITY_EXPONENT));
            movie_taste.push((cluster, genre_bits));
        }
        let alias = |(ids, weights): (Vec<i64>, Vec<f64>)| {
            if ids.is_empty() {
                None
            } else {
                WeightedAliasIndex::new(weights).ok().map(|w| (ids, w))
            }
        };
        let by_genre = genre_movies.into_iter().map(alias).collect();
        let by_cluster = cluster_movies.into_iter().map(alias).collect();
        let zipf = rand_distr::Zipf::new(config.movies as f64, cinerec_catalog::ZIPF_EXPONENT)
            .map_err(|e| format!("zipf: {e}"))?;
        let like_ratings = WeightedAliasIndex::new(RATING_SHARES[LIKE_STEP..].to_vec())
            .map_err(|e| format!("ratings: {e}"))?;
        let other_ratings = WeightedAliasIndex::new(RATING_SHARES[..LIKE_STEP].to_vec())
            .map_err(|e| format!("ratings: {e}"))?;
        Ok(Workload {
            rng: Pcg64Mcg::seed_from_u64(config.run_seed),
            catalog,
            users,
            user_taste,
            by_genre,
            by_cluster,
            movie_taste,
            zipf,
            like_ratings,
            other_ratings,
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

    /// A rating: a like with probability `p_like`, its stars from
    /// [`RATING_SHARES`] within likes or within the rest.
    fn rating(&mut self, p_like: f64) -> f32 {
        let step = if self.rng.random_bool(p_like.clamp(0.0, 1.0)) {
            LIKE_STEP + self.like_ratings.sample(&mut self.rng)
        } else {
            self.other_ratings.sample(&mut self.rng)
        };
        // step 0 ↔ 0.5 stars … 9 ↔ 5.0 stars.
        (step as f32 + 1.0) / 2.0
    }

    /// The like probability of `user` for `movie` (see the module docs).
    fn like_probability(&self, clusters: [u32; 2], genre_bits: u32, movie: i64) -> f64 {
        let (cluster, movie_genres) = self.taste_of(movie);
        let base = if clusters.contains(&cluster) {
            LIKE_IN_CLUSTER
        } else {
            LIKE_OUTSIDE
        };
        if movie_genres & genre_bits != 0 {
            base + TASTE_BONUS
        } else {
            base
        }
    }

    /// (cluster, genre bits) of a movie id of the catalogue.
    fn taste_of(&self, movie: i64) -> (u32, u32) {
        usize::try_from(movie - 1)
            .ok()
            .and_then(|i| self.movie_taste.get(i))
            .copied()
            .unwrap_or((u32::MAX, 0))
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
        let index = self.users.sample(&mut self.rng);
        let user_id = index as i64 + 1;
        let (clusters, genre_bits) = self.user_taste[index];
        let preferred: Vec<usize> = (0..GENRES.len())
            .filter(|gi| genre_bits & (1 << gi) != 0 && self.by_genre[*gi].is_some())
            .collect();
        let roll: f64 = self.rng.random();
        let cluster = if self.rng.random_bool(PRIMARY_SHARE) {
            clusters[0]
        } else {
            clusters[1]
        };
        let movie_id = match (roll, self.by_cluster.get(cluster as usize)) {
            (r, Some(Some((ids, weights)))) if r < CLUSTER_AFFINITY => {
                ids[weights.sample(&mut self.rng)]
            }
            (r, _) if r < CLUSTER_AFFINITY + GENRE_AFFINITY && !preferred.is_empty() => {
                let gi = preferred[self.rng.random_range(0..preferred.len())];
                match &self.by_genre[gi] {
                    Some((ids, weights)) => ids[weights.sample(&mut self.rng)],
                    None => self.popular_movie(),
                }
            }
            _ => self.popular_movie(),
        };
        let p_like = self.like_probability(clusters, genre_bits, movie_id);
        let rating = self.rating(p_like);
        self.created += 1;
        OpKind::Create {
            user_id,
            movie_id,
            rating,
        }
    }
}

/// `genres` as a bit set over [`GENRES`] (unknown names are left out).
fn genre_bits(genres: &[String]) -> u32 {
    genres
        .iter()
        .filter_map(|g| GENRES.iter().position(|(name, _)| name == g))
        .fold(0, |bits, gi| bits | 1 << gi)
}

impl Workload {
    /// A movie by global Zipf popularity rank.
    fn popular_movie(&mut self) -> i64 {
        let rank = self.zipf.sample(&mut self.rng) as u64;
        self.catalog.id_of_rank(rank.clamp(1, self.config.movies))
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
                // A correction: the person's second opinion, not tied to taste.
                let rating = self.rating(RATING_SHARES[LIKE_STEP..].iter().sum());
                OpKind::Edit { nth, rating }
            }
            _ => self.create(),
        };
        Some(Op { at, kind })
    }
}

#[cfg(test)]
mod tests;
