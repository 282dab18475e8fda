//! The synthetic world cinerec runs on: a movie catalogue and a user base,
//! generated deterministically from a seed.
//!
//! Both the metadata seeders (movie-svc, user-svc) and the load generator use
//! this crate, so the reviews the load generator writes follow the same
//! popularity and taste the catalogue was built with. Every entity is a pure
//! function of `(seed, id)`: [`Catalog::movie`] and [`Catalog::user`] need no
//! state, so seeding can run in any order or in parallel, and the load
//! generator can recompute a user's taste instead of loading a million rows.
//!
//! # Distributions, and why
//!
//! * **Movie popularity is Zipf-distributed over rank** (weight `1 / rank^s`,
//!   `s =` [`ZIPF_EXPONENT`]). Ratings per movie in public rating data sets
//!   (MovieLens, Netflix Prize) are famously long-tailed: a few hundred titles
//!   collect a large share of all ratings while most titles get a handful; a
//!   power law with exponent near 1 is the usual fit. Ranks are spread over ids
//!   by a seeded bijection ([`Catalog::rank_of`]), so id order carries no
//!   popularity signal (as in a real catalogue, where ids follow insertion).
//! * **Genres** are drawn from [`GENRES`] weighted by roughly how often each
//!   genre labels a movie in the MovieLens 25M catalogue (drama and comedy
//!   dominate; film-noir is rare); a movie has 1, 2 or 3 distinct genres with
//!   probabilities 0.45/0.35/0.20 (MovieLens averages close to two per title).
//! * **Release years** skew recent: `2025 − Exp(mean 18 years)`, floored at
//!   1920, because catalogues grow roughly exponentially with time.
//! * **Runtimes** are normal(105 min, 20 min) clipped to 60–240 minutes.
//! * **User activity is heavy-tailed**: a log-normal weight (σ =
//!   [`ACTIVITY_SIGMA`], normalised to mean 1). Reviews per user in rating data
//!   sets have a long right tail (a few users rate thousands of titles, the
//!   median user a few dozen); the load generator picks the reviewing user in
//!   proportion to this weight.
//! * **Preferred genres**: 1–3 genres drawn from the same prior as the movies,
//!   so tastes follow supply. **Country/zone** from a fixed weighted list, the
//!   zone being the cache/replica zone a user is served from. **Tier**:
//!   free 60 %, standard 30 %, premium 10 %. **Sign-up date**: uniform over
//!   the ten years before 2025-01-01.
//!
//! # Planted taste structure (issue 15)
//!
//! A recommender can only beat "most popular" if tastes exist to be learnt.
//! The world plants them, as latent factors do in real rating data
//! (matrix-factorisation studies of MovieLens/Netflix find a few dozen
//! factors — genre mixes, tone, audience — explain most of the signal):
//!
//! * **Taste clusters**: [`TASTE_CLUSTERS`] latent clusters, each with two
//!   genres drawn from the genre prior ([`TasteCluster::genres`]) and its own
//!   [`STYLES_PER_CLUSTER`] movie **styles** (a style stands for what genres
//!   miss: tone, director, era, franchise). Style `s` belongs to cluster
//!   `s / STYLES_PER_CLUSTER`.
//! * **A movie's style**: with probability [`STYLE_GENRE_FIT`] a style of a
//!   cluster sharing one of the movie's genres (uniform among such
//!   clusters), otherwise any style: clusters follow genres loosely, so
//!   genre alone does not identify them (the noise a genre-only
//!   recommender cannot see through).
//! * **A user's clusters**: a primary one, with probability
//!   [`CLUSTER_GENRE_FIT`] among the clusters sharing a genre with their
//!   preferred genres, and a different secondary one, uniform: people have a
//!   main taste and a side interest.
//!
//! Styles and clusters come from their own random streams, so every field
//! that existed before them (genres, popularity, preferred genres, …) is
//! unchanged for a given seed and already seeded databases stay valid. How
//! the load generator turns clusters into reviews and likes is in
//! `loadgen/README.md`.

#![forbid(unsafe_code)]

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Normal};
use rand_pcg::Pcg64Mcg;

/// Exponent `s` of the Zipf popularity law over movie ranks.
pub const ZIPF_EXPONENT: f64 = 1.0;

/// σ of the log-normal user activity weight (μ chosen so the mean is 1).
pub const ACTIVITY_SIGMA: f64 = 1.2;

/// Genres and their prior weight (≈ share of MovieLens 25M titles carrying
/// the genre, rounded). The weights need not sum to 1.
pub const GENRES: &[(&str, f64)] = &[
    ("Drama", 0.40),
    ("Comedy", 0.27),
    ("Thriller", 0.14),
    ("Romance", 0.12),
    ("Action", 0.12),
    ("Horror", 0.09),
    ("Documentary", 0.09),
    ("Crime", 0.09),
    ("Adventure", 0.07),
    ("Sci-Fi", 0.06),
    ("Children", 0.05),
    ("Animation", 0.05),
    ("Mystery", 0.05),
    ("Fantasy", 0.05),
    ("War", 0.03),
    ("Western", 0.02),
    ("Musical", 0.02),
    ("Film-Noir", 0.005),
];

/// Latent taste clusters of the world (see the module docs).
pub const TASTE_CLUSTERS: u32 = 40;
/// Movie styles each cluster owns: style `s` is cluster `s / STYLES_PER_CLUSTER`'s.
pub const STYLES_PER_CLUSTER: u32 = 4;
/// Number of movie styles.
pub const STYLES: u32 = TASTE_CLUSTERS * STYLES_PER_CLUSTER;
/// Probability that a movie's style belongs to a cluster sharing one of its genres.
pub const STYLE_GENRE_FIT: f64 = 0.8;
/// Probability that a user's primary cluster shares one of their preferred genres.
pub const CLUSTER_GENRE_FIT: f64 = 0.9;

/// One latent taste cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TasteCluster {
    /// `0..TASTE_CLUSTERS`.
    pub id: u32,
    /// Two distinct genres from [`GENRES`], drawn from the genre prior.
    pub genres: Vec<String>,
}

impl TasteCluster {
    /// Whether the cluster shares a genre with `genres`.
    pub fn meets(&self, genres: &[String]) -> bool {
        self.genres.iter().any(|g| genres.contains(g))
    }
}

/// Countries with their share of users and the zone that serves them.
pub const COUNTRIES: &[(&str, &str, f64)] = &[
    ("US", "us-east", 0.30),
    ("CA", "us-east", 0.05),
    ("BR", "us-east", 0.08),
    ("MX", "us-east", 0.05),
    ("GB", "eu-west", 0.08),
    ("DE", "eu-west", 0.07),
    ("FR", "eu-west", 0.06),
    ("ES", "eu-west", 0.04),
    ("IN", "ap-south", 0.12),
    ("JP", "ap-south", 0.05),
    ("KR", "ap-south", 0.04),
    ("AU", "ap-south", 0.06),
];

/// A user's subscription tier: the contracts' `Tier` (60 % `Free`, 30 %
/// `Standard`, 10 % `Premium` in a generated world).
pub use cinerec_events::Tier;

/// One movie of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Movie {
    /// 1-based id, `1..=movies`.
    pub id: i64,
    /// A generated title; titles repeat across a large catalogue, as real ones do.
    pub title: String,
    /// Release year.
    pub year: i32,
    /// 1–3 distinct genres from [`GENRES`].
    pub genres: Vec<String>,
    /// Runtime in minutes.
    pub runtime_minutes: i32,
    /// Popularity rank, 1 = most popular.
    pub rank: u64,
    /// The movie's expected share of all reviews (Zipf weight normalised over
    /// the catalogue): the values of a catalogue sum to 1.
    pub popularity: f64,
    /// Latent style, `0..STYLES`; it places the movie in one taste cluster.
    pub style: u32,
}

impl Movie {
    /// The taste cluster the movie's style belongs to.
    pub fn cluster(&self) -> u32 {
        self.style / STYLES_PER_CLUSTER
    }
}

/// One user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// 1-based id, `1..=users`.
    pub id: i64,
    /// A generated display name.
    pub display_name: String,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// The zone serving the user.
    pub zone: String,
    /// Sign-up date as days since 1970-01-01 (Avro `date`).
    pub signup_date: i32,
    /// 1–3 distinct genres the user prefers.
    pub preferred_genres: Vec<String>,
    /// Subscription tier.
    pub tier: Tier,
    /// Relative review activity; the mean over users is 1.
    pub activity: f64,
    /// Primary and secondary taste cluster (distinct), `0..TASTE_CLUSTERS`.
    pub clusters: [u32; 2],
}

/// Sizes and seed of a generated world.
#[derive(Debug, Clone)]
pub struct Catalog {
    seed: u64,
    movies: u64,
    users: u64,
    /// Σ 1/r^s over all ranks: normalises popularity.
    zipf_norm: f64,
    /// Multiplier of the rank bijection, coprime with `movies`.
    rank_mul: u64,
    /// Its inverse modulo `movies`, to map a rank back to an id.
    rank_mul_inv: u64,
    rank_add: u64,
    /// The [`TASTE_CLUSTERS`] clusters, by id.
    clusters: Vec<TasteCluster>,
}

// Stream tags keep the per-entity random streams of movies and users apart.
const MOVIE_STREAM: u64 = 0x006d_6f76_6965;
const USER_STREAM: u64 = 0x7573_6572;
const PERMUTATION_STREAM: u64 = 0x7065_726d;
const CLUSTER_STREAM: u64 = 0x636c_7573;
const MOVIE_STYLE_STREAM: u64 = 0x7374_796c;
const USER_TASTE_STREAM: u64 = 0x7461_7374;

/// Day number of 2025-01-01 (days since 1970-01-01).
const DAY_2025_01_01: i32 = 20_089;

impl Catalog {
    /// A world of `movies` movies and `users` users generated from `seed`.
    ///
    /// # Panics
    /// If `movies` or `users` is 0 (a programming error, not input: callers
    /// validate their flags).
    pub fn new(seed: u64, movies: u64, users: u64) -> Catalog {
        assert!(
            movies > 0 && users > 0,
            "a catalogue needs movies and users"
        );
        let zipf_norm = (1..=movies).map(zipf_weight).sum();
        let mut rng = stream(seed, PERMUTATION_STREAM, 0);
        let rank_mul = if movies == 1 {
            1
        } else {
            loop {
                let candidate = rng.random_range(1..movies);
                if gcd(candidate, movies) == 1 {
                    break candidate;
                }
            }
        };
        let rank_mul_inv = mod_inverse(rank_mul, movies);
        let rank_add = rng.random_range(0..movies);
        let clusters = (0..TASTE_CLUSTERS)
            .map(|id| TasteCluster {
                id,
                genres: draw_genres(
                    &mut stream(seed, CLUSTER_STREAM, u64::from(id)),
                    &[0.0, 1.0, 0.0],
                ),
            })
            .collect();
        Catalog {
            clusters,
            seed,
            movies,
            users,
            zipf_norm,
            rank_mul,
            rank_mul_inv,
            rank_add,
        }
    }

    /// Number of movies.
    pub fn movies(&self) -> u64 {
        self.movies
    }

    /// Number of users.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// The taste clusters, by id.
    pub fn clusters(&self) -> &[TasteCluster] {
        &self.clusters
    }

    /// A cluster uniformly among those sharing a genre with `genres` with
    /// probability `fit` (when any does), otherwise uniformly among all.
    fn cluster_for(&self, rng: &mut Pcg64Mcg, genres: &[String], fit: f64) -> u32 {
        let meeting: Vec<u32> = self
            .clusters
            .iter()
            .filter(|c| c.meets(genres))
            .map(|c| c.id)
            .collect();
        if !meeting.is_empty() && rng.random_bool(fit) {
            meeting[rng.random_range(0..meeting.len())]
        } else {
            rng.random_range(0..TASTE_CLUSTERS)
        }
    }

    /// Popularity rank (1 = most popular) of movie `id`: a seeded bijection of
    /// `1..=movies`.
    pub fn rank_of(&self, id: i64) -> u64 {
        let i = (id as u64 - 1) % self.movies;
        (mul_mod(i, self.rank_mul, self.movies) + self.rank_add) % self.movies + 1
    }

    /// The movie id holding popularity `rank` (inverse of [`Catalog::rank_of`]).
    pub fn id_of_rank(&self, rank: u64) -> i64 {
        let r = (rank - 1) % self.movies;
        let shifted = (r + self.movies - self.rank_add) % self.movies;
        (mul_mod(shifted, self.rank_mul_inv, self.movies) + 1) as i64
    }

    /// Movie `id` (1-based; ids beyond the catalogue wrap around).
    pub fn movie(&self, id: i64) -> Movie {
        let mut rng = stream(self.seed, MOVIE_STREAM, id as u64);
        let rank = self.rank_of(id);
        let genres = draw_genres(&mut rng, &[0.45, 0.35, 0.20]);
        let age: f64 = Exp::new(1.0 / 18.0).map_or(0.0, |d| d.sample(&mut rng));
        let year = (2025 - age.floor() as i32).max(1920);
        let runtime: f64 = Normal::new(105.0, 20.0).map_or(105.0, |d| d.sample(&mut rng));
        let mut taste = stream(self.seed, MOVIE_STYLE_STREAM, id as u64);
        let cluster = self.cluster_for(&mut taste, &genres, STYLE_GENRE_FIT);
        let style = cluster * STYLES_PER_CLUSTER + taste.random_range(0..STYLES_PER_CLUSTER);
        Movie {
            style,
            id,
            title: title(&mut rng),
            year,
            genres,
            runtime_minutes: runtime.round().clamp(60.0, 240.0) as i32,
            rank,
            popularity: zipf_weight(rank) / self.zipf_norm,
        }
    }

    /// User `id` (1-based).
    pub fn user(&self, id: i64) -> User {
        let mut rng = stream(self.seed, USER_STREAM, id as u64);
        let &(country, zone, _) = pick_weighted(&mut rng, COUNTRIES, |c| c.2);
        let preferred_genres = draw_genres(&mut rng, &[0.4, 0.4, 0.2]);
        let tier = match rng.random::<f64>() {
            p if p < 0.6 => Tier::Free,
            p if p < 0.9 => Tier::Standard,
            _ => Tier::Premium,
        };
        // μ = −σ²/2 makes E[weight] = 1.
        let activity = LogNormal::new(-ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0, ACTIVITY_SIGMA)
            .map_or(1.0, |d| d.sample(&mut rng));
        let mut taste = stream(self.seed, USER_TASTE_STREAM, id as u64);
        let primary = self.cluster_for(&mut taste, &preferred_genres, CLUSTER_GENRE_FIT);
        // Uniform over the other clusters.
        let secondary = (primary + taste.random_range(1..TASTE_CLUSTERS)) % TASTE_CLUSTERS;
        User {
            clusters: [primary, secondary],
            id,
            display_name: format!(
                "{} {}",
                pick(&mut rng, FIRST_NAMES),
                pick(&mut rng, LAST_NAMES)
            ),
            country: country.to_owned(),
            zone: zone.to_owned(),
            signup_date: DAY_2025_01_01 - rng.random_range(0..3_653),
            preferred_genres,
            tier,
            activity,
        }
    }
}

fn zipf_weight(rank: u64) -> f64 {
    (rank as f64).powf(-ZIPF_EXPONENT)
}

/// An independent random stream per `(seed, kind, id)`, mixed with SplitMix64 so
/// that neighbouring ids get unrelated streams.
fn stream(seed: u64, kind: u64, id: u64) -> Pcg64Mcg {
    let mut z = seed ^ kind.rotate_left(32) ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

/// 1, 2 or 3 distinct genres with the given probabilities, each drawn from the
/// genre prior without replacement.
fn draw_genres(rng: &mut Pcg64Mcg, count_probs: &[f64; 3]) -> Vec<String> {
    let p: f64 = rng.random();
    let count = if p < count_probs[0] {
        1
    } else if p < count_probs[0] + count_probs[1] {
        2
    } else {
        3
    };
    let mut chosen: Vec<&str> = Vec::with_capacity(count);
    while chosen.len() < count {
        let &(name, _) = pick_weighted(rng, GENRES, |g| g.1);
        if !chosen.contains(&name) {
            chosen.push(name);
        }
    }
    chosen.into_iter().map(str::to_owned).collect()
}

/// An item of the non-empty `items`, drawn in proportion to `weight`.
fn pick_weighted<'a, T>(rng: &mut Pcg64Mcg, items: &'a [T], weight: impl Fn(&T) -> f64) -> &'a T {
    let total: f64 = items.iter().map(&weight).sum();
    let mut x = rng.random::<f64>() * total;
    for item in items {
        x -= weight(item);
        if x < 0.0 {
            return item;
        }
    }
    // Rounding can leave x at 0 after the last item.
    &items[items.len() - 1]
}

fn pick<'a>(rng: &mut Pcg64Mcg, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

fn title(rng: &mut Pcg64Mcg) -> String {
    match rng.random_range(0..3) {
        0 => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        1 => format!("{} of the {}", pick(rng, NOUNS), pick(rng, NOUNS)),
        _ => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
    }
}

const ADJECTIVES: &[&str] = &[
    "Silent", "Last", "Crimson", "Hidden", "Broken", "Golden", "Midnight", "Lost", "Electric",
    "Frozen", "Wild", "Distant", "Burning", "Hollow", "Secret", "Velvet", "Iron", "Paper",
    "Northern", "Restless",
];
const NOUNS: &[&str] = &[
    "Harbor",
    "Empire",
    "Garden",
    "Signal",
    "River",
    "Kingdom",
    "Station",
    "Mirror",
    "Horizon",
    "Orchard",
    "Machine",
    "Winter",
    "Carnival",
    "Lighthouse",
    "Frontier",
    "Voyage",
    "Archive",
    "Circus",
    "Desert",
    "Symphony",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Ben", "Chiara", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai", "Lena",
    "Mateo", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
];
const LAST_NAMES: &[&str] = &[
    "Andersen", "Bianchi", "Chen", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Müller", "Nakamura", "Okafor", "Patel", "Rossi", "Silva", "Tanaka",
    "Weber",
];

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    ((a as u128 * b as u128) % m as u128) as u64
}

/// Inverse of `a` modulo `m` (`gcd(a, m) = 1`), by the extended Euclidean algorithm.
fn mod_inverse(a: u64, m: u64) -> u64 {
    if m == 1 {
        return 0;
    }
    let (mut old_r, mut r) = (a as i128, m as i128);
    let (mut old_s, mut s) = (1_i128, 0_i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(m as i128) as u64
}

#[cfg(test)]
mod tests;
