//! The workload's distributions, measured on generated streams.

use std::collections::HashMap;

use super::*;

fn config() -> WorkloadConfig {
    WorkloadConfig {
        movies: 2_000,
        users: 5_000,
        mean_rate: 1_000.0,
        day_length: Duration::from_secs(60),
        start_hour: 0.0,
        ..WorkloadConfig::default()
    }
}

#[test]
fn same_seeds_same_stream() {
    let a: Vec<Op> = Workload::new(config()).unwrap().take(500).collect();
    let b: Vec<Op> = Workload::new(config()).unwrap().take(500).collect();
    assert_eq!(a, b);
    let c: Vec<Op> = Workload::new(WorkloadConfig {
        run_seed: 2,
        ..config()
    })
    .unwrap()
    .take(500)
    .collect();
    assert_ne!(a, c);
}

#[test]
fn mean_rate_over_a_day_and_evening_peak() {
    // One simulated day = 60 s of wall time at 1000 ops/s on average.
    let ops: Vec<Op> = Workload::new(config())
        .unwrap()
        .take_while(|op| op.at < Duration::from_secs(60))
        .collect();
    let per_sec = ops.len() as f64 / 60.0;
    assert!((per_sec - 1_000.0).abs() < 30.0, "{per_sec} ops/s");
    // Hour h of the simulated day is wall second 2.5h .. 2.5(h+1).
    let in_hour = |h: f64| {
        ops.iter()
            .filter(|o| (o.at.as_secs_f64() / 2.5).floor() == h)
            .count() as f64
    };
    let (peak, trough) = (in_hour(20.0), in_hour(8.0));
    // λ(20h)/λ(8h) = 1.6 / 0.4 = 4.
    assert!(
        peak / trough > 3.0 && peak / trough < 5.5,
        "peak {peak}, trough {trough}"
    );
}

#[test]
fn ratings_are_j_shaped_and_taste_raises_them() {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let mut creates = 0;
    for op in Workload::new(config()).unwrap().take(40_000) {
        if let OpKind::Create { rating, .. } = op.kind {
            assert!((0.5..=5.0).contains(&rating) && (rating * 2.0).fract() == 0.0);
            *counts.entry((rating * 2.0) as u32).or_default() += 1;
            creates += 1;
        }
    }
    let share = |half_stars: u32| {
        f64::from(counts.get(&half_stars).copied().unwrap_or(0)) / f64::from(creates)
    };
    let mode = (1..=10)
        .max_by_key(|h| counts.get(h).copied().unwrap_or(0))
        .unwrap();
    assert_eq!(mode, 8, "4.0 stars is the most common rating");
    assert!(share(1) < 0.03 && share(2) < 0.05, "few very low ratings");
    // Likes (≥ 4.0) are ~50 % in MovieLens; the taste bonus adds a few points.
    let likes: f64 = (8..=10).map(share).sum();
    assert!((0.50..0.65).contains(&likes), "like share {likes}");
}

#[test]
fn popular_movies_and_active_users_dominate_and_taste_shows() {
    let cfg = config();
    let catalog = Catalog::new(cfg.world_seed, cfg.movies, cfg.users);
    let (mut by_rank, mut by_user) = (HashMap::<u64, u32>::new(), HashMap::<i64, u32>::new());
    let (mut in_taste, mut creates) = (0_u32, 0_u32);
    for op in Workload::new(cfg).unwrap().take(50_000) {
        if let OpKind::Create {
            user_id, movie_id, ..
        } = op.kind
        {
            *by_rank.entry(catalog.rank_of(movie_id)).or_default() += 1;
            *by_user.entry(user_id).or_default() += 1;
            let prefs = catalog.user(user_id).preferred_genres;
            in_taste += u32::from(
                catalog
                    .movie(movie_id)
                    .genres
                    .iter()
                    .any(|g| prefs.contains(g)),
            );
            creates += 1;
        }
    }
    let top10: u32 = (1..=10)
        .map(|r| by_rank.get(&r).copied().unwrap_or(0))
        .sum();
    let mid10: u32 = (1000..1010)
        .map(|r| by_rank.get(&r).copied().unwrap_or(0))
        .sum();
    assert!(
        top10 > 10 * mid10.max(1),
        "Zipf: top {top10} vs mid {mid10}"
    );
    let mut per_user: Vec<u32> = by_user.values().copied().collect();
    per_user.sort_unstable_by(|a, b| b.cmp(a));
    let top_1pct: u32 = per_user.iter().take(50).sum();
    assert!(
        f64::from(top_1pct) / f64::from(creates) > 0.05,
        "heavy tail: the top 1 % of users write more than 5 %"
    );
    assert!(
        f64::from(in_taste) / f64::from(creates) > 0.6,
        "{in_taste}/{creates} in preferred genres"
    );
}

#[test]
fn edit_and_delete_shares_and_targets() {
    let mut created = 0_u64;
    let mut deleted = std::collections::HashSet::new();
    let (mut edits, mut deletes, mut total) = (0_u32, 0_u32, 0_u32);
    for op in Workload::new(config()).unwrap().take(20_000) {
        total += 1;
        match op.kind {
            OpKind::Create { .. } => created += 1,
            OpKind::Edit { nth, .. } => {
                assert!(nth < created, "edits target earlier creations");
                assert!(!deleted.contains(&nth), "no edit of a deleted review");
                edits += 1;
            }
            OpKind::Delete { nth } => {
                assert!(nth < created);
                assert!(deleted.insert(nth), "each review deleted once");
                deletes += 1;
            }
        }
    }
    let (e, d) = (
        f64::from(edits) / f64::from(total),
        f64::from(deletes) / f64::from(total),
    );
    assert!(
        (0.04..0.06).contains(&e) && (0.005..0.015).contains(&d),
        "edits {e}, deletes {d}"
    );
}

#[test]
fn bad_config_is_refused() {
    assert!(
        Workload::new(WorkloadConfig {
            users: 0,
            ..config()
        })
        .is_err()
    );
    assert!(
        Workload::new(WorkloadConfig {
            edit_share: 0.7,
            delete_share: 0.4,
            ..config()
        })
        .is_err()
    );
}

#[test]
fn users_review_and_like_their_clusters_much_more_often() {
    let cfg = config();
    let catalog = Catalog::new(cfg.world_seed, cfg.movies, cfg.users);
    // (reviews, likes) of movies in the author's clusters, and of the rest.
    let (mut inside, mut outside) = ((0_u32, 0_u32), (0_u32, 0_u32));
    for op in Workload::new(cfg.clone()).unwrap().take(40_000) {
        if let OpKind::Create {
            user_id,
            movie_id,
            rating,
        } = op.kind
        {
            let ours = catalog
                .user(user_id)
                .clusters
                .contains(&catalog.movie(movie_id).cluster());
            let side = if ours { &mut inside } else { &mut outside };
            side.0 += 1;
            side.1 += u32::from(rating >= 4.0);
        }
    }
    let total = f64::from(inside.0 + outside.0);
    // 2 of 40 clusters hold ~1/20 of the catalogue, yet get about half the
    // reviews (CLUSTER_AFFINITY, plus what popularity and genre picks add).
    let review_share = f64::from(inside.0) / total;
    assert!(
        (0.45..0.7).contains(&review_share),
        "in-cluster reviews {review_share}"
    );
    let like_in = f64::from(inside.1) / f64::from(inside.0);
    let like_out = f64::from(outside.1) / f64::from(outside.0);
    assert!(
        like_in > 1.8 * like_out,
        "like rate in clusters {like_in} vs outside {like_out}"
    );
    assert!((0.72..0.86).contains(&like_in) && (0.33..0.45).contains(&like_out));
}
