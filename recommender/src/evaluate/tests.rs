//! The protocol on a small world, without the Python peer.

use std::io::Cursor;
use std::path::Path;

use super::*;

fn small() -> Args {
    Args::small(800, 1_200, 50_000)
}

#[test]
fn the_history_has_the_asked_creations_and_versions_in_order() {
    let (states, creations) = history(&small()).unwrap();
    assert_eq!(creations, 50_000);
    assert!(states.len() > 50_000, "edits and deletes come on top");
    assert!(
        states
            .windows(2)
            .all(|w| w[0].changed_at_us <= w[1].changed_at_us)
    );
    let mut version: HashMap<u128, i64> = HashMap::new();
    for s in &states {
        let v = version.entry(s.review_id).or_insert(0);
        assert_eq!(s.version, *v + 1, "versions of a review count up by one");
        *v = s.version;
    }
}

#[test]
fn the_last_like_in_time_is_held_out_and_absent_from_training() {
    let (states, creations) = history(&small()).unwrap();
    let split = split(states.clone(), creations);
    assert!(split.held_out.len() > 300, "{} users", split.held_out.len());
    let t = train(&split);
    let mut full = Model::new();
    for s in &states {
        full.apply(*s);
    }
    for (&u, &m) in &split.held_out {
        assert!(full.likes(u, m), "user {u} likes the held-out {m}");
        assert!(!t.model.has_seen(u, m), "held-out {m} of {u} in training");
        assert!(
            t.model.liked_by(u).count() >= 1,
            "user {u} keeps a training like"
        );
        // No other like of the user changed later than the held-out one.
        let last_change = |movie: MovieId| {
            full.review_states()
                .filter(|s| s.user_id == u && s.movie_id == movie && !s.deleted)
                .map(|s| s.changed_at_us)
                .max()
        };
        let held_at = last_change(m);
        for other in full.liked_by(u).filter(|o| *o != m) {
            assert!(
                last_change(other) <= held_at,
                "user {u}: {other} liked after {m}"
            );
        }
    }
    // Everything else is training, unchanged.
    assert_eq!(
        split.train.len()
            + states
                .iter()
                .filter(|s| split.held_out.get(&s.user_id) == Some(&s.movie_id))
                .count(),
        states.len()
    );
}

#[test]
fn cinerec_beats_popularity_on_the_planted_world() {
    let args = small();
    let (outcomes, summary) = evaluate(&args).unwrap();
    assert!(summary.contains("50000 review creations"), "{summary}");
    let [cinerec, before, popularity] = &outcomes[..] else {
        panic!("three methods without the peer: {outcomes:?}");
    };
    assert_eq!(cinerec.method, served_name());
    assert_eq!(before.method, BEFORE);
    assert_eq!(popularity.method, "popularity");
    for o in &outcomes {
        assert_eq!(
            o.all.users, outcomes[0].all.users,
            "same users for every method"
        );
        assert!(o.all.hit_rate.value > 0.0 && o.all.hit_rate.value < 1.0);
        assert!(o.all.ndcg.value <= o.all.hit_rate.value);
    }
    // The planted clusters are learnable: co-occurrence beats popularity
    // beyond both intervals, and spreads over more of the catalogue.
    assert!(
        cinerec.all.hit_rate.low > popularity.all.hit_rate.high,
        "{} vs {}",
        cinerec.all.hit_rate,
        popularity.all.hit_rate
    );
    assert!(cinerec.all.coverage.value > popularity.all.coverage.value);
    // The before/after: the shrinkage does better than the plain cosine it
    // replaced, here as on the default world (README).
    assert!(
        cinerec.all.hit_rate.value > before.all.hit_rate.value,
        "{} vs {}",
        cinerec.all.hit_rate,
        before.all.hit_rate
    );
    let table = render(&outcomes, args.k);
    assert!(
        table.contains("| popularity |") && table.contains("x popularity (goal >= 2x)"),
        "{table}"
    );
    assert!(table.contains(&format!("| {BEFORE} |")), "{table}");
    let chart = svg(&outcomes, args.k, "small");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(chart.matches("<title>").count(), 3 * outcomes.len());
}

#[test]
fn peer_lists_are_parsed_and_bad_lines_refused() {
    let path = Path::new("recs_test.tsv");
    let good = read_peer_lists(path, Cursor::new("1\t5 6 7\n2\t\n")).unwrap();
    assert_eq!(good.get(&1), Some(&vec![5, 6, 7]));
    assert_eq!(good.get(&2), Some(&vec![]));
    for bad in ["1 5 6\n", "x\t5\n", "1\t5 y\n", "1\t5\n1\t6\n"] {
        let err = read_peer_lists(path, Cursor::new(bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 malformed lines") && err.contains("recs_test.tsv:"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn finish_drops_seen_movies_and_tops_up() {
    let mut model = Model::new();
    model.apply(ReviewState {
        review_id: 1,
        user_id: 7,
        movie_id: 3,
        rating: 2.0,
        version: 1,
        changed_at_us: 0,
        deleted: false,
    });
    assert_eq!(finish(&model, 7, &[3, 4], &[4, 3, 5, 6], 3), vec![4, 5, 6]);
    assert_eq!(finish(&model, 8, &[3], &[], 3), vec![3]);
}

#[test]
fn cosine_lists_at_the_served_lambda_are_model_recommend() {
    let args = small();
    let (states, creations) = history(&args).unwrap();
    let split = split(states, creations);
    let t = train(&split);
    let users = || split.held_out.keys().copied();
    let served = cinerec_lists(&t, users(), args.k);
    assert_eq!(cosine_lists(&t, users(), args.k, SHRINKAGE), served);
    // The plain cosine ranks differently: the before row is a different method.
    assert_ne!(cosine_lists(&t, users(), args.k, 0.0), served);
}
