//! `recommender evaluate` (issue 15): how good are the recommendations?
//! A standard offline protocol on a history generated from loadgen's world.
//!
//! 1. **History**: `--reviews` creations (plus loadgen's 5 % edits and 1 %
//!    deletes) from `loadgen::workload` over a catalogue of `--movies` and
//!    `--users`, seeded, as [`ReviewState`]s in time order.
//! 2. **Split**: per user, the latest state of every review decides the
//!    likes (as the model does); users with ≥ 2 likes are evaluated and
//!    their **last like in time** is held out: every version of every
//!    review of that (user, movie) leaves the training history. The rest is
//!    the training history, identical for every method.
//! 3. **Methods**, each giving every evaluated user a ranking with movies
//!    they have seen in training removed:
//!    * `cinerec` — the real [`Model`], fed the training history event by
//!      event ([`Model::apply`]), `Model::recommend` (the served shrunk
//!      cosine, λ = [`SHRINKAGE`]) topped up from popularity, as the service
//!      tops up from trending;
//!    * `cinerec before` — the plain cosine `C/sqrt(N·N)` that was served
//!      until the shrinkage (DESIGN.md §5's formula), scored by
//!      [`cosine_lists`] from the same model's `C` and `N`: the "before" of
//!      the before/after;
//!    * `cinerec candidate: …` — measured-only variants of the similarity
//!      (asymmetric cosine, IDF-weighted users, row-max normalisation, a
//!      popularity blend for cold users), scored by [`candidates`] from the
//!      same model's `C`, `N` and likes; never served. The defaults are
//!      [`DEFAULT_CANDIDATES`], `--candidate SPEC` replaces them;
//!    * `popularity` — movies by training likes `N(i)`;
//!    * the `implicit` library's `CosineRecommender`, `BM25Recommender` and
//!      `AlternatingLeastSquares`, run by `eval/implicit_peer.py` in a
//!      cached venv (`eval/venv.sh`) on the same training likes, written to
//!      files; their top-N are read back.
//! 4. **Metrics** ([`metrics`]): hit-rate@k, NDCG@k and catalogue coverage,
//!    with bootstrap 95 % intervals over users, one code path for all.

pub mod candidates;
pub mod metrics;
mod peer;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loadgen::workload::{OpKind, Workload, WorkloadConfig};

use crate::model::{Model, MovieId, ReviewState, SHRINKAGE, UserId};
use metrics::Scores;
use peer::run_peer;
pub use peer::{BadPeerLine, read_peer_lists, write_split};
pub use report::{render, svg};

/// Default catalogue size of the evaluation world.
pub const DEFAULT_MOVIES: u64 = 3_000;
/// Default user base: with the default reviews, 50 reviews per user on
/// average (heavy-tailed: the median user writes ~25), about a third of
/// MovieLens-1M's density. At 20 000 users (15 reviews each) most users had
/// one or two training likes and every method scored lower.
pub const DEFAULT_USERS: u64 = 6_000;
/// Default review creations (the issue asks for ≥ 200k).
pub const DEFAULT_REVIEWS: u64 = 300_000;
/// Default cut-off of the metrics.
pub const DEFAULT_K: usize = 10;
/// Default bootstrap resamples.
pub const DEFAULT_RESAMPLES: usize = 1_000;
/// How many recommendations each method returns per user before seen
/// movies are dropped and the list is cut at k.
const CANDIDATES: usize = 50;
/// Users with at most this many likes (training + held out) are reported
/// as the cold-start segment.
pub const COLD_LIKES: usize = 2;

/// The measured-only candidate rows of the default table, tuned on history
/// seed 2 (see `evaluate::candidates` and the README): the best variant
/// from `C` and `N` alone (asymmetric cosine, row-max normalisation,
/// popularity blended in for users with ≤ 2 training likes), the best with
/// IDF-weighted users, and that one with the popularity blend.
pub const DEFAULT_CANDIDATES: [&str; 3] = [
    "lambda=40,alpha=0.8,norm=1,pop=0.5,cold=2",
    "lambda=40,alpha=0.8,gamma=1,norm=1",
    "lambda=40,alpha=0.8,gamma=1,norm=1,pop=0.5,cold=2",
];

/// `recommender evaluate` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Movies in the generated world.
    #[arg(long, default_value_t = DEFAULT_MOVIES)]
    pub movies: u64,
    /// Users in the generated world.
    #[arg(long, default_value_t = DEFAULT_USERS)]
    pub users: u64,
    /// Review creations to generate (edits and deletes come on top).
    #[arg(long, default_value_t = DEFAULT_REVIEWS)]
    pub reviews: u64,
    /// Seed of the world (catalogue and tastes).
    #[arg(long, default_value_t = 1)]
    pub world_seed: u64,
    /// Seed of the history and of the bootstrap.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cut-off k of hit-rate@k and NDCG@k.
    #[arg(long, default_value_t = DEFAULT_K)]
    pub k: usize,
    /// Bootstrap resamples of the users for the 95 % intervals.
    #[arg(long, default_value_t = DEFAULT_RESAMPLES)]
    pub resamples: usize,
    /// Also score the similarity `C/sqrt(N·N) · C/(C+λ)` at this λ as an
    /// extra "candidate" row (to revisit the served λ, `model::SHRINKAGE`,
    /// on another seed); 0 leaves it out.
    #[arg(long, default_value_t = 0.0)]
    pub candidate_shrinkage: f64,
    /// Also score a measured-only candidate (`evaluate::candidates`), as
    /// `key=value,...` of `lambda`, `alpha`, `beta`, `gamma`, `norm`, `pop`,
    /// `cold`; repeatable, one extra row each. Given, it replaces the
    /// default rows ([`DEFAULT_CANDIDATES`]); `--candidate ''` alone scores none.
    #[arg(long = "candidate", value_name = "SPEC", default_values_t = DEFAULT_CANDIDATES.map(String::from))]
    pub candidates: Vec<String>,
    /// Skip the Python `implicit` peer (no venv, no Python).
    #[arg(long)]
    pub no_peer: bool,
    /// The script that creates the peer's venv and prints its python.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/venv.sh"))]
    pub venv_script: PathBuf,
    /// The peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/implicit_peer.py"))]
    pub peer_script: PathBuf,
    /// Where the split and the peer's lists are written (default: a fresh
    /// directory under the system's temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the table as an SVG bar chart here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

impl Args {
    /// Defaults at the given sizes, without the peer (tests).
    pub fn small(movies: u64, users: u64, reviews: u64) -> Args {
        Args {
            movies,
            users,
            reviews,
            world_seed: 1,
            seed: 1,
            k: DEFAULT_K,
            resamples: 200,
            candidate_shrinkage: 0.0,
            candidates: Vec::new(),
            no_peer: true,
            venv_script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/eval/venv.sh")),
            peer_script: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/eval/implicit_peer.py"
            )),
            work_dir: None,
            svg: None,
        }
    }
}

/// The generated history and its hold-out split.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Every review state not of a held-out (user, movie), in time order.
    pub train: Vec<ReviewState>,
    /// The held-out movie of each evaluated user.
    pub held_out: BTreeMap<UserId, MovieId>,
    /// Likes (training + held out) of each evaluated user.
    pub likes: BTreeMap<UserId, usize>,
    /// Review states generated (creations, edits, deletes).
    pub events: usize,
    /// Review creations among them.
    pub creations: u64,
}

/// Generates the history of `args` from loadgen's workload.
pub fn history(args: &Args) -> anyhow::Result<(Vec<ReviewState>, u64)> {
    let config = WorkloadConfig {
        world_seed: args.world_seed,
        run_seed: args.seed,
        movies: args.movies,
        users: args.users,
        ..WorkloadConfig::default()
    };
    let workload = Workload::new(config).map_err(|e| anyhow::anyhow!("workload: {e}"))?;
    let mut states: Vec<ReviewState> = Vec::new();
    // The latest state of each creation (index = nth creation).
    let mut reviews: Vec<ReviewState> = Vec::new();
    for op in workload {
        if reviews.len() as u64 >= args.reviews {
            break;
        }
        let at = i64::try_from(op.at.as_micros()).context("history longer than i64 µs")?;
        let state = match op.kind {
            OpKind::Create {
                user_id,
                movie_id,
                rating,
            } => {
                let s = ReviewState {
                    review_id: reviews.len() as u128 + 1,
                    user_id,
                    movie_id,
                    rating,
                    version: 1,
                    changed_at_us: at,
                    deleted: false,
                };
                reviews.push(s);
                s
            }
            OpKind::Edit { nth, rating } => {
                let r = earlier(&mut reviews, nth)?;
                r.version += 1;
                r.rating = rating;
                r.changed_at_us = at;
                *r
            }
            OpKind::Delete { nth } => {
                let r = earlier(&mut reviews, nth)?;
                r.version += 1;
                r.deleted = true;
                r.changed_at_us = at;
                *r
            }
        };
        states.push(state);
    }
    Ok((states, reviews.len() as u64))
}

/// The `nth` creation, which an edit or delete must follow.
fn earlier(reviews: &mut [ReviewState], nth: u64) -> anyhow::Result<&mut ReviewState> {
    let len = reviews.len();
    usize::try_from(nth)
        .ok()
        .and_then(|i| reviews.get_mut(i))
        .ok_or_else(|| anyhow::anyhow!("the workload changed creation {nth} of {len}"))
}

/// The hold-out split of a history (see the module docs).
pub fn split(states: Vec<ReviewState>, creations: u64) -> Split {
    // Final likes as the model sees them, and when each like last changed.
    let mut full = Model::new();
    for s in &states {
        full.apply(*s);
    }
    let mut liked_at: HashMap<(UserId, MovieId), i64> = HashMap::new();
    for s in full.review_states() {
        if !s.deleted && full.likes(s.user_id, s.movie_id) {
            let at = liked_at.entry((s.user_id, s.movie_id)).or_insert(i64::MIN);
            *at = (*at).max(s.changed_at_us);
        }
    }
    let mut per_user: BTreeMap<UserId, Vec<(i64, MovieId)>> = BTreeMap::new();
    for (&(u, m), &at) in &liked_at {
        per_user.entry(u).or_default().push((at, m));
    }
    let mut held_out = BTreeMap::new();
    let mut likes = BTreeMap::new();
    for (u, mut l) in per_user {
        if l.len() < 2 {
            continue;
        }
        // Last in time; a tie goes to the higher movie id (deterministic).
        l.sort_unstable();
        if let Some(&(_, m)) = l.last() {
            held_out.insert(u, m);
            likes.insert(u, l.len());
        }
    }
    let events = states.len();
    let train = states
        .into_iter()
        .filter(|s| held_out.get(&s.user_id) != Some(&s.movie_id))
        .collect();
    Split {
        train,
        held_out,
        likes,
        events,
        creations,
    }
}

/// One method's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The method's name.
    pub method: String,
    /// All evaluated users.
    pub all: Scores,
    /// The cold-start segment (≤ [`COLD_LIKES`] likes).
    pub cold: Scores,
    /// Time to train and recommend.
    pub took: Duration,
}

/// The trained model and what every method needs from the training data.
#[derive(Debug)]
pub struct Trained {
    /// The real model, fed the training history event by event.
    pub model: Model,
    /// Movies by training likes, most first (ties by id).
    pub popular: Vec<MovieId>,
    /// How long feeding the model took.
    pub took: Duration,
}

/// Feeds the training history into a [`Model`] one state at a time.
pub fn train(split: &Split) -> Trained {
    let start = Instant::now();
    let mut model = Model::new();
    for s in &split.train {
        model.apply(*s);
    }
    let took = start.elapsed();
    let mut popular: Vec<MovieId> = model.liked_movies().collect();
    popular.sort_unstable_by(|a, b| model.n(*b).cmp(&model.n(*a)).then(a.cmp(b)));
    Trained {
        model,
        popular,
        took,
    }
}

/// `ranking` without movies the user has seen in training, topped up from
/// `popular`, cut at `k`.
pub fn finish(
    model: &Model,
    user: UserId,
    ranking: &[MovieId],
    popular: &[MovieId],
    k: usize,
) -> Vec<MovieId> {
    let mut out: Vec<MovieId> = Vec::with_capacity(k);
    for &m in ranking.iter().chain(popular) {
        if out.len() >= k {
            break;
        }
        if !model.has_seen(user, m) && !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// cinerec's lists: `Model::recommend`, topped up from popularity.
pub fn cinerec_lists(
    t: &Trained,
    users: impl Iterator<Item = UserId>,
    k: usize,
) -> BTreeMap<UserId, Vec<MovieId>> {
    users
        .map(|u| {
            let ranking: Vec<MovieId> = t
                .model
                .recommend(u, k)
                .into_iter()
                .map(|(m, _)| m)
                .collect();
            (u, finish(&t.model, u, &ranking, &t.popular, k))
        })
        .collect()
}

/// Lists scored from the trained model's `C` and `N` at any λ, outside the
/// served code: `C/sqrt(N(i)·N(j)) · C/(C + λ)` summed over the user's likes.
/// λ = 0 is the plain cosine served before the shrinkage (the "before"
/// row); λ = [`SHRINKAGE`] gives exactly `Model::recommend`'s lists (a unit
/// test checks it); any other λ is a candidate.
pub fn cosine_lists(
    t: &Trained,
    users: impl Iterator<Item = UserId>,
    k: usize,
    lambda: f64,
) -> Lists {
    let m = &t.model;
    users
        .map(|u| {
            let mut scores: HashMap<MovieId, f64> = HashMap::new();
            for i in m.liked_by(u) {
                let ni = f64::from(m.n(i));
                for j in m.co_liked(i) {
                    if m.has_seen(u, j) {
                        continue;
                    }
                    let (c, nj) = (f64::from(m.c(i, j)), f64::from(m.n(j)));
                    if ni > 0.0 && nj > 0.0 {
                        // λ = 0 exactly as the old `Model::recommend` did,
                        // any other λ as `model::shrunk_cosine` does: the
                        // same bits as the code each row stands for.
                        let s = if lambda == 0.0 {
                            c / (ni * nj).sqrt()
                        } else {
                            c / (ni * nj).sqrt() * c / (c + lambda)
                        };
                        *scores.entry(j).or_insert(0.0) += s;
                    }
                }
            }
            let mut ranked: Vec<(MovieId, f64)> = scores.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let ranking: Vec<MovieId> = ranked.into_iter().take(k).map(|(j, _)| j).collect();
            (u, finish(m, u, &ranking, &t.popular, k))
        })
        .collect()
}

/// The popularity baseline's lists.
pub fn popularity_lists(
    t: &Trained,
    users: impl Iterator<Item = UserId>,
    k: usize,
) -> BTreeMap<UserId, Vec<MovieId>> {
    users
        .map(|u| (u, finish(&t.model, u, &[], &t.popular, k)))
        .collect()
}

/// Scores one method's lists on all users and on the cold-start segment.
pub fn outcome(
    method: &str,
    lists: &BTreeMap<UserId, Vec<MovieId>>,
    split: &Split,
    args: &Args,
    took: Duration,
) -> Outcome {
    let cold: BTreeMap<UserId, MovieId> = split
        .held_out
        .iter()
        .filter(|(u, _)| split.likes.get(u).is_some_and(|n| *n <= COLD_LIKES))
        .map(|(u, m)| (*u, *m))
        .collect();
    let catalogue = usize::try_from(args.movies).unwrap_or(usize::MAX);
    Outcome {
        method: method.to_owned(),
        all: metrics::score(
            lists,
            &split.held_out,
            catalogue,
            args.k,
            args.resamples,
            args.seed,
        ),
        cold: metrics::score(lists, &cold, catalogue, args.k, args.resamples, args.seed),
        took,
    }
}

/// The served model's row name.
pub fn served_name() -> String {
    format!("cinerec (served: cosine x C/(C+{SHRINKAGE}), Model::recommend)")
}
/// The plain cosine's row name: the model as served before the shrinkage.
pub const BEFORE: &str = "cinerec before (plain cosine C/sqrt(N*N))";

/// Each user's ranking, best first.
pub type Lists = BTreeMap<UserId, Vec<MovieId>>;

/// The whole evaluation: its outcomes, in table order, and a summary of the data.
pub fn evaluate(args: &Args) -> anyhow::Result<(Vec<Outcome>, String)> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    // Bad specs fail before the history is generated.
    let specs = args
        .candidates
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| candidates::Candidate::parse(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let (states, creations) = history(args)?;
    let split = split(states, creations);
    let t = train(&split);
    let mut summary = String::new();
    let cold_users = split.likes.values().filter(|n| **n <= COLD_LIKES).count();
    let _ = writeln!(
        summary,
        "world: {} movies, {} users (world seed {}, history seed {}); history: {} review creations, {} states (edits and deletes included), generated in {:.1?}",
        args.movies,
        args.users,
        args.world_seed,
        args.seed,
        split.creations,
        split.events,
        start.elapsed()
    );
    let _ = writeln!(
        summary,
        "split: {} users with >= 2 likes evaluated ({} cold-start, <= {COLD_LIKES} likes), last like in time held out; training: {} likes by {} users, {} co-liked pairs; model fed {} states in {:.2?}",
        split.held_out.len(),
        cold_users,
        t.model.like_count(),
        t.model.users_with_likes().count(),
        t.model.pair_count(),
        split.train.len(),
        t.took
    );
    let users = || split.held_out.keys().copied();
    let mut outcomes = Vec::new();
    let timed = Instant::now();
    let lists = cinerec_lists(&t, users(), args.k);
    outcomes.push(outcome(
        &served_name(),
        &lists,
        &split,
        args,
        t.took + timed.elapsed(),
    ));
    let timed = Instant::now();
    let lists = cosine_lists(&t, users(), args.k, 0.0);
    outcomes.push(outcome(
        BEFORE,
        &lists,
        &split,
        args,
        t.took + timed.elapsed(),
    ));
    if args.candidate_shrinkage > 0.0 {
        let timed = Instant::now();
        let lists = cosine_lists(&t, users(), args.k, args.candidate_shrinkage);
        let name = format!(
            "cinerec candidate: cosine x C/(C+{})",
            args.candidate_shrinkage
        );
        outcomes.push(outcome(
            &name,
            &lists,
            &split,
            args,
            t.took + timed.elapsed(),
        ));
    }
    let mut rows: Option<candidates::Rows> = None;
    for cand in &specs {
        let timed = Instant::now();
        if rows.as_ref().is_none_or(|r| r.gamma() != cand.gamma) {
            rows = Some(candidates::Rows::new(&t, cand.gamma));
        }
        if let Some(r) = &rows {
            let lists = candidates::lists(&t, r, cand, users(), args.k);
            outcomes.push(outcome(
                &cand.name(),
                &lists,
                &split,
                args,
                t.took + timed.elapsed(),
            ));
        }
    }
    let timed = Instant::now();
    let lists = popularity_lists(&t, users(), args.k);
    outcomes.push(outcome("popularity", &lists, &split, args, timed.elapsed()));
    if !args.no_peer {
        let dir = match &args.work_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("cinerec-evaluate-{}", std::process::id())),
        };
        let pairs = write_split(&dir, &t, &split)?;
        let _ = writeln!(
            summary,
            "peer: split written to {} ({pairs} training likes)",
            dir.display()
        );
        for (name, lists, took) in run_peer(args, &dir)? {
            let lists = lists
                .into_iter()
                .map(|(u, l)| {
                    let finished = finish(&t.model, u, &l, &[], args.k);
                    (u, finished)
                })
                .collect();
            outcomes.push(outcome(&name, &lists, &split, args, took));
        }
        if args.work_dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok((outcomes, summary))
}

/// The `evaluate` subcommand: prints the summary and the table.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (outcomes, summary) = evaluate(&args)?;
    print!("{summary}\n{}", render(&outcomes, args.k));
    if let Some(path) = &args.svg {
        let caption = format!(
            "recommender evaluate: {} movies, {} users, {} reviews, last like held out",
            args.movies, args.users, args.reviews
        );
        std::fs::write(path, svg(&outcomes, args.k, &caption))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("chart written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
