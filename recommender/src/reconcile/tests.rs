//! Unit tests of `reconcile`.
use super::*;

#[test]
fn equal_lists_match() {
    let full = vec![(1, 3.0), (2, 2.0), (3, 1.0)];
    assert_eq!(compare_recommendations(&full, &full), Ok(()));
}

#[test]
fn near_ties_may_swap_but_real_order_may_not() {
    let full = vec![(1, 2.0), (2, 2.0 * (1.0 - 1e-12)), (3, 1.0)];
    let swapped = vec![(2, 2.0 * (1.0 - 1e-12)), (1, 2.0), (3, 1.0)];
    assert_eq!(compare_recommendations(&full, &swapped), Ok(()));
    let wrong = vec![(1, 2.0), (3, 1.0), (2, 2.0)];
    assert_eq!(
        compare_recommendations(&full, &wrong),
        Err(Mismatch::Movie {
            position: 1,
            expected: 2,
            actual: 3
        })
    );
}

#[test]
fn a_tie_at_the_cut_may_pick_either_movie() {
    let mut full: Vec<(MovieId, f64)> = (0..TOP_N as i64).map(|m| (m, 100.0 - m as f64)).collect();
    let last = full[TOP_N - 1].1;
    full.push((999, last));
    full.push((1000, last / 2.0));
    let mut actual = full[..TOP_N].to_vec();
    actual[TOP_N - 1] = (999, last);
    assert_eq!(compare_recommendations(&full, &actual), Ok(()));
    actual[TOP_N - 1] = (1000, last / 2.0);
    assert!(matches!(
        compare_recommendations(&full, &actual),
        Err(Mismatch::Movie { position: 19, .. })
    ));
}

#[test]
fn scores_are_compared_relatively() {
    let full = vec![(1, 1e6), (2, 1e-6)];
    let ok = vec![(1, 1e6 * (1.0 + 1e-12)), (2, 1e-6 * (1.0 - 1e-12))];
    assert_eq!(compare_recommendations(&full, &ok), Ok(()));
    let off = vec![(1, 1e6), (2, 1.1e-6)];
    assert!(matches!(
        compare_recommendations(&full, &off),
        Err(Mismatch::Score {
            position: 1,
            movie: 2,
            ..
        })
    ));
}

#[test]
fn length_and_unknown_movies_are_differences() {
    let full = vec![(1, 2.0), (2, 1.0)];
    assert_eq!(
        compare_recommendations(&full, &full[..1]),
        Err(Mismatch::Length {
            expected: 2,
            actual: 1
        })
    );
    assert!(matches!(
        compare_recommendations(&full, &[(1, 2.0), (7, 1.0)]),
        Err(Mismatch::Movie { actual: 7, .. })
    ));
}
