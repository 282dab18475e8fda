//! Trending movies per genre over event-time sliding windows.
//!
//! Events are counted into buckets of `slide` by their *event* time (when the
//! review was accepted), not by when the recommender sees them, so a replay or
//! a lagging consumer computes the same trends. The window is the last
//! `window` of event time, i.e. `window / slide` buckets, sliding by one
//! bucket at a time.
//!
//! The **watermark** is the greatest event time seen minus
//! `allowed_lateness`: the consumer's promise that nothing older is still
//! coming. An event older than the watermark is **late**: it is not added to
//! trending (its window may already have been shown and evicted), it is
//! counted in [`Trending::late`] and the caller's metrics, and the like model
//! still takes it — lateness never loses a rating.
//!
//! Duplicates: the caller only observes review states the model accepted as
//! new ([`crate::model::Applied::Advanced`]), so redeliveries are not counted
//! twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::model::MovieId;

/// Window shape.
#[derive(Debug, Clone, Copy)]
pub struct TrendingConfig {
    /// How much event time a window covers.
    pub window: Duration,
    /// Bucket width and slide step; divides `window`.
    pub slide: Duration,
    /// How far behind the newest event an event may be and still count.
    pub allowed_lateness: Duration,
}

impl Default for TrendingConfig {
    /// One hour sliding by five minutes, two minutes of lateness: long enough to
    /// smooth a single burst, short enough that "trending" means this hour.
    fn default() -> Self {
        TrendingConfig {
            window: Duration::from_secs(3600),
            slide: Duration::from_secs(300),
            allowed_lateness: Duration::from_secs(120),
        }
    }
}

/// What happened to an observed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Counted in its bucket.
    Counted,
    /// Older than the watermark: not counted in trending.
    Late,
}

/// Per-genre movie counts per event-time bucket.
#[derive(Debug, Clone)]
pub struct Trending {
    window_us: i64,
    slide_us: i64,
    lateness_us: i64,
    /// Invariant: only buckets that can still be part of a window ending at or
    /// after the watermark.
    buckets: BTreeMap<i64, HashMap<String, HashMap<MovieId, u32>>>,
    max_event_us: Option<i64>,
    late: u64,
}

impl Trending {
    /// Empty trending state with `config`.
    pub fn new(config: TrendingConfig) -> Trending {
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1);
        Trending {
            window_us: us(config.window),
            slide_us: us(config.slide),
            lateness_us: us(config.allowed_lateness),
            buckets: BTreeMap::new(),
            max_event_us: None,
            late: 0,
        }
    }

    /// The watermark (µs since the epoch), once any event was seen.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_us.map(|t| t - self.lateness_us)
    }

    /// Late events so far.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Counts one review of `movie` (with its `genres`) at `event_us`.
    pub fn observe(&mut self, event_us: i64, movie: MovieId, genres: &[String]) -> Observed {
        if self.watermark().is_some_and(|w| event_us < w) {
            self.late += 1;
            return Observed::Late;
        }
        let bucket = event_us.div_euclid(self.slide_us) * self.slide_us;
        let counts = self.buckets.entry(bucket).or_default();
        for genre in genres {
            *counts
                .entry(genre.clone())
                .or_default()
                .entry(movie)
                .or_insert(0) += 1;
        }
        if self.max_event_us.is_none_or(|m| event_us > m) {
            self.max_event_us = Some(event_us);
            self.evict();
        }
        Observed::Counted
    }

    fn evict(&mut self) {
        if let Some(w) = self.watermark() {
            // A bucket ending before the oldest window that may still receive
            // an event (one starting `window` before the watermark) is done.
            let oldest = w - self.window_us;
            self.buckets
                .retain(|start, _| start + self.slide_us > oldest);
        }
    }

    /// The `k` movies with most reviews in `genre` over the window — the
    /// `window / slide` buckets ending with the newest event's bucket — best
    /// first (ties by id).
    pub fn top(&self, genre: &str, k: usize) -> Vec<(MovieId, u32)> {
        let Some(newest) = self.max_event_us else {
            return Vec::new();
        };
        let last_bucket = newest.div_euclid(self.slide_us) * self.slide_us;
        let first_bucket = last_bucket - self.window_us + self.slide_us;
        let mut counts: HashMap<MovieId, u32> = HashMap::new();
        for (_, by_genre) in self.buckets.range(first_bucket..) {
            for (movie, n) in by_genre.get(genre).into_iter().flatten() {
                *counts.entry(*movie).or_insert(0) += n;
            }
        }
        let mut top: Vec<(MovieId, u32)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(k);
        top
    }

    /// Movies trending across `genres`, best first, without duplicates: what
    /// a cold-start user with these preferred genres is shown.
    pub fn top_in(&self, genres: &[String], k: usize) -> Vec<MovieId> {
        let mut merged: HashMap<MovieId, u32> = HashMap::new();
        for g in genres {
            for (m, n) in self.top(g, k) {
                *merged.entry(m).or_insert(0) += n;
            }
        }
        let mut top: Vec<(MovieId, u32)> = merged.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.into_iter().take(k).map(|(m, _)| m).collect()
    }

    /// The current window `[start, end)` in event time (µs): the buckets
    /// [`top`](Self::top) sums. `None` before any event.
    pub fn window(&self) -> Option<(i64, i64)> {
        let newest = self.max_event_us?;
        let last_bucket = newest.div_euclid(self.slide_us) * self.slide_us;
        Some((
            last_bucket - self.window_us + self.slide_us,
            last_bucket + self.slide_us,
        ))
    }

    /// Buckets held (memory bound check).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn g(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn trending() -> Trending {
        Trending::new(TrendingConfig {
            window: Duration::from_secs(600),
            slide: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(120),
        })
    }

    #[test]
    fn counts_per_genre_inside_the_window() {
        let mut t = trending();
        t.observe(0, 1, &g(&["Drama", "War"]));
        t.observe(MIN, 2, &g(&["Drama"]));
        t.observe(2 * MIN, 2, &g(&["Drama"]));
        assert_eq!(t.top("Drama", 10), vec![(2, 2), (1, 1)]);
        assert_eq!(t.top("War", 10), vec![(1, 1)]);
        assert!(t.top("Comedy", 10).is_empty());
        // At minute 11 the window is minutes 2..=11: minutes 0 and 1 slid out.
        t.observe(11 * MIN, 3, &g(&["Drama"]));
        assert_eq!(t.top("Drama", 10), vec![(2, 1), (3, 1)]);
        assert!(t.top("War", 10).is_empty());
        t.observe(11 * MIN + 5, 3, &g(&["Drama"]));
        assert_eq!(t.top_in(&g(&["War", "Drama"]), 2), vec![3, 2]);
    }

    #[test]
    fn late_events_are_counted_as_late_not_as_trends() {
        let mut t = trending();
        t.observe(10 * MIN, 1, &g(&["Drama"]));
        // Within the allowed lateness (2 min): counted.
        assert_eq!(t.observe(9 * MIN, 2, &g(&["Drama"])), Observed::Counted);
        // Behind the watermark (8 min): late.
        assert_eq!(t.observe(7 * MIN, 3, &g(&["Drama"])), Observed::Late);
        assert_eq!(t.late(), 1);
        assert_eq!(t.top("Drama", 10), vec![(1, 1), (2, 1)]);
        assert_eq!(t.watermark(), Some(8 * MIN));
    }

    #[test]
    fn old_buckets_are_evicted() {
        let mut t = trending();
        for minute in 0..200 {
            t.observe(minute * MIN, minute, &g(&["Drama"]));
        }
        // window 10 + lateness 2 minutes of one-minute buckets, give or take one.
        assert!(t.buckets() <= 13, "{} buckets held", t.buckets());
        assert_eq!(t.top("Drama", 100).len(), 10);
    }
}
