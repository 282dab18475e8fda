//! How `recommender evaluate` shows its outcomes: a Markdown table and an
//! SVG bar chart with the confidence intervals (README's plot).

use std::fmt::Write as _;

use super::Outcome;
use super::metrics::{self, Scores};

/// Which estimate of [`Scores`] a chart group shows.
type Metric = fn(&Scores) -> metrics::Estimate;

/// The table of outcomes.
pub fn render(outcomes: &[Outcome], k: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| method | hit-rate@{k} [95% CI] | NDCG@{k} [95% CI] | coverage@{k} [95% CI] | cold-start hit-rate@{k} [95% CI] | time |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} (n = {}) | {:.1?} |",
            o.method,
            o.all.hit_rate,
            o.all.ndcg,
            o.all.coverage,
            o.cold.hit_rate,
            o.cold.users,
            o.took
        );
    }
    let hit = |prefix: &str| {
        outcomes
            .iter()
            .find(|o| o.method.starts_with(prefix))
            .map(|o| o.all.hit_rate.value)
    };
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    out.push('\n');
    for o in outcomes.iter().filter(|o| o.method.starts_with("cinerec")) {
        let c = o.all.hit_rate.value;
        let mut line = format!("{}: hit-rate@{k}", o.method);
        if let Some(p) = hit("popularity") {
            let _ = write!(line, " {:.2}x popularity (goal >= 2x)", ratio(c, p));
        }
        if let Some(knn) = hit("implicit Cosine") {
            let _ = write!(
                line,
                ", {:.2}x implicit CosineRecommender (goal >= 0.9x)",
                ratio(c, knn)
            );
        }
        if let Some(bm25) = hit("implicit BM25") {
            let _ = write!(line, ", {:.2}x BM25Recommender", ratio(c, bm25));
        }
        if let Some(als) = hit("implicit Alternating") {
            let _ = write!(line, ", {:.2}x ALS", ratio(c, als));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The outcomes as an SVG: one group of bars per metric, a bar per
/// method with its 95 % interval as a whisker.
pub fn svg(outcomes: &[Outcome], k: usize, caption: &str) -> String {
    const COLOURS: [&str; 11] = [
        "#d62728", "#ff9896", "#ff7f0e", "#ffbb78", "#bcbd22", "#7f7f7f", "#1f77b4", "#17becf",
        "#2ca02c", "#9467bd", "#8c564b",
    ];
    let metrics: [(&str, Metric); 3] = [
        ("hit-rate@k", |s| s.hit_rate),
        ("NDCG@k", |s| s.ndcg),
        ("coverage@k", |s| s.coverage),
    ];
    // At least 30 px per bar, so the value labels above the bars do not overlap.
    let w = f64::max(760.0, 70.0 + 3.0 * (30.0 + 30.0 * outcomes.len() as f64));
    let (h, left, top, bottom) = (360.0, 50.0, 40.0, 300.0);
    let plot_h = bottom - top;
    let group_w = (w - left - 20.0) / metrics.len() as f64;
    let bar_w = (group_w - 30.0) / outcomes.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="11">"#,
        h + 22.0 * outcomes.len() as f64
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="13">{}</text>"#,
        escape(caption)
    );
    for tick in 0..=5 {
        let v = f64::from(tick) / 5.0;
        let y = bottom - v * plot_h;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"##,
            w - 20.0,
            left - 4.0,
            y + 4.0
        );
    }
    for (g, (name, get)) in metrics.iter().enumerate() {
        let x0 = left + g as f64 * group_w + 15.0;
        for (i, o) in outcomes.iter().enumerate() {
            let e = get(&o.all);
            let x = x0 + i as f64 * bar_w;
            let y = bottom - e.value.clamp(0.0, 1.0) * plot_h;
            let (ylo, yhi) = (
                bottom - e.low.clamp(0.0, 1.0) * plot_h,
                bottom - e.high.clamp(0.0, 1.0) * plot_h,
            );
            let cx = x + bar_w * 0.45;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {name}: {e}</title></rect>"#,
                bar_w * 0.9,
                bottom - y,
                COLOURS[i % COLOURS.len()],
                escape(&o.method)
            );
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{ylo:.1}" y2="{yhi:.1}" stroke="black"/>"#
            );
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="9">{:.3}</text>"#,
                yhi - 3.0,
                e.value
            );
        }
        let label = name.replace('k', &k.to_string());
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            x0 + group_w / 2.0 - 15.0,
            bottom + 16.0
        );
    }
    for (i, o) in outcomes.iter().enumerate() {
        let y = bottom + 40.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            left + 18.0,
            escape(&o.method)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
