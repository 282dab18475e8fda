//! Properties the seeders and the load generator rely on.

use super::*;

#[test]
fn same_seed_same_world_other_seed_other_world() {
    let a = Catalog::new(7, 1_000, 1_000);
    let b = Catalog::new(7, 1_000, 1_000);
    let c = Catalog::new(8, 1_000, 1_000);
    for id in [1, 2, 500, 1_000] {
        assert_eq!(a.movie(id), b.movie(id));
        assert_eq!(a.user(id), b.user(id));
    }
    let differs = (1..=50).filter(|&id| a.movie(id) != c.movie(id)).count();
    assert!(
        differs > 45,
        "another seed should change almost every movie ({differs}/50)"
    );
}

#[test]
fn ranks_are_a_bijection_and_invertible() {
    for n in [1_u64, 2, 7, 1_000, 4_096] {
        let cat = Catalog::new(42, n, 1);
        let mut seen = vec![false; n as usize];
        for id in 1..=n as i64 {
            let rank = cat.rank_of(id);
            assert!((1..=n).contains(&rank));
            assert!(
                !seen[rank as usize - 1],
                "rank {rank} given twice (n = {n})"
            );
            seen[rank as usize - 1] = true;
            assert_eq!(cat.id_of_rank(rank), id);
        }
    }
}

#[test]
fn popularity_is_zipf_over_rank_and_sums_to_one() {
    let cat = Catalog::new(1, 10_000, 1);
    let total: f64 = (1..=10_000).map(|id| cat.movie(id).popularity).sum();
    assert!((total - 1.0).abs() < 1e-9, "popularity sums to {total}");
    let top = cat.movie(cat.id_of_rank(1)).popularity;
    let tenth = cat.movie(cat.id_of_rank(10)).popularity;
    assert!((top / tenth - 10.0).abs() < 1e-9, "weight ∝ 1/rank");
}

#[test]
fn movies_have_one_to_three_distinct_known_genres_and_sane_fields() {
    let cat = Catalog::new(3, 5_000, 1);
    let mut per_count = [0_u32; 4];
    for id in 1..=5_000 {
        let m = cat.movie(id);
        assert!((1..=3).contains(&m.genres.len()));
        per_count[m.genres.len()] += 1;
        let mut g = m.genres.clone();
        g.sort();
        g.dedup();
        assert_eq!(g.len(), m.genres.len(), "genres repeat in {m:?}");
        assert!(m.genres.iter().all(|g| GENRES.iter().any(|(n, _)| n == g)));
        assert!((1920..=2025).contains(&m.year));
        assert!((60..=240).contains(&m.runtime_minutes));
        assert!(!m.title.is_empty());
    }
    // 0.45 / 0.35 / 0.20 of 5000, loosely.
    assert!((2_000..2_500).contains(&per_count[1]), "{per_count:?}");
    assert!((1_500..2_000).contains(&per_count[2]), "{per_count:?}");
    assert!((800..1_200).contains(&per_count[3]), "{per_count:?}");
}

#[test]
fn user_activity_is_heavy_tailed_with_mean_one() {
    let cat = Catalog::new(5, 1, 20_000);
    let mut activity: Vec<f64> = (1..=20_000).map(|id| cat.user(id).activity).collect();
    let mean = activity.iter().sum::<f64>() / activity.len() as f64;
    assert!((mean - 1.0).abs() < 0.1, "mean activity {mean}");
    activity.sort_by(f64::total_cmp);
    let median = activity[activity.len() / 2];
    let p99 = activity[activity.len() * 99 / 100];
    // Log-normal σ=1.2: median e^{-0.72} ≈ 0.49, p99 ≈ e^{-0.72+2.33·1.2} ≈ 7.9.
    assert!(median < 0.6 && p99 > 6.0, "median {median}, p99 {p99}");
}

#[test]
fn users_have_valid_country_zone_tier_and_signup() {
    let cat = Catalog::new(9, 1, 2_000);
    let mut premium = 0;
    for id in 1..=2_000 {
        let u = cat.user(id);
        let (_, zone, _) = COUNTRIES
            .iter()
            .find(|(c, _, _)| *c == u.country)
            .expect("known country");
        assert_eq!(&u.zone, zone);
        assert!((1..=3).contains(&u.preferred_genres.len()));
        assert!((DAY_2025_01_01 - 3_653..DAY_2025_01_01).contains(&u.signup_date));
        premium += (u.tier == Tier::Premium) as u32;
    }
    assert!(
        (120..300).contains(&premium),
        "≈10 % premium, got {premium}/2000"
    );
}

#[test]
fn clusters_have_two_genres_and_own_their_styles() {
    let cat = Catalog::new(5, 4_000, 4_000);
    assert_eq!(cat.clusters().len(), TASTE_CLUSTERS as usize);
    for (k, c) in cat.clusters().iter().enumerate() {
        assert_eq!(c.id as usize, k);
        assert_eq!(c.genres.len(), 2);
        assert_ne!(c.genres[0], c.genres[1]);
    }
    assert_eq!(Catalog::new(5, 10, 10).clusters(), cat.clusters());
    let mut per_cluster = vec![0_u32; TASTE_CLUSTERS as usize];
    let mut fit = 0;
    for id in 1..=4_000 {
        let m = cat.movie(id);
        assert!(m.style < STYLES);
        per_cluster[m.cluster() as usize] += 1;
        fit += u32::from(cat.clusters()[m.cluster() as usize].meets(&m.genres));
    }
    // STYLE_GENRE_FIT = 0.8 of movies are placed in a cluster meeting their
    // genres; some of the rest land in one by chance.
    let share = f64::from(fit) / 4_000.0;
    assert!((0.8..0.97).contains(&share), "genre fit {share}");
    assert!(
        per_cluster.iter().all(|&n| n > 0),
        "every cluster has movies: {per_cluster:?}"
    );
}

#[test]
fn users_have_two_distinct_clusters_mostly_meeting_their_genres() {
    let cat = Catalog::new(6, 10, 5_000);
    let (mut fit, mut secondary) = (0, vec![0_u32; TASTE_CLUSTERS as usize]);
    for id in 1..=5_000 {
        let u = cat.user(id);
        let [a, b] = u.clusters;
        assert!(a < TASTE_CLUSTERS && b < TASTE_CLUSTERS && a != b, "{u:?}");
        fit += u32::from(cat.clusters()[a as usize].meets(&u.preferred_genres));
        secondary[b as usize] += 1;
    }
    let share = f64::from(fit) / 5_000.0;
    assert!(
        (0.9..0.99).contains(&share),
        "primary meets genres: {share}"
    );
    // Secondary is uniform over the others: no cluster is starved.
    assert!(secondary.iter().all(|&n| n > 100), "{secondary:?}");
}
