//! The standard library peer (issue 15 point 2): the split written to files
//! for the Python `implicit` package, its cached virtualenv, the peer run,
//! and its top-k lists read back (bounded, every line checked).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{Args, CANDIDATES, Lists, Split, Trained};
use crate::model::{MovieId, UserId};

/// Writes the split for the peer: `train.tsv` (the training likes, as the
/// model holds them after the training history) and `users.tsv`.
pub fn write_split(dir: &Path, t: &Trained, split: &Split) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut train = BufWriter::new(std::fs::File::create(dir.join("train.tsv"))?);
    let mut pairs = 0;
    let users: BTreeSet<UserId> = t.model.users_with_likes().collect();
    for u in users {
        let mut liked: Vec<MovieId> = t.model.liked_by(u).collect();
        liked.sort_unstable();
        for m in liked {
            writeln!(train, "{u}\t{m}")?;
            pairs += 1;
        }
    }
    train.flush()?;
    let mut users = BufWriter::new(std::fs::File::create(dir.join("users.tsv"))?);
    for u in split.held_out.keys() {
        writeln!(users, "{u}")?;
    }
    users.flush()?;
    Ok(pairs)
}

/// Why a peer's output file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {problem}")]
pub struct BadPeerLine {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Parses a peer's `user<TAB>movie movie …` lines. Every malformed line is
/// an error (the first is reported, all are counted): a peer's output that
/// cannot be read is not scored.
pub fn read_peer_lists(
    path: &Path,
    text: impl BufRead,
) -> anyhow::Result<BTreeMap<UserId, Vec<MovieId>>> {
    let mut out = BTreeMap::new();
    let mut bad: Vec<BadPeerLine> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line?;
        let fail = |problem: String| BadPeerLine {
            path: path.display().to_string(),
            line: n + 1,
            problem,
        };
        let Some((user, movies)) = line.split_once('\t') else {
            bad.push(fail(format!("no tab in {line:?}")));
            continue;
        };
        let Ok(user) = user.parse::<UserId>() else {
            bad.push(fail(format!("user {user:?} is not an integer")));
            continue;
        };
        let parsed: Result<Vec<MovieId>, _> = movies.split_whitespace().map(str::parse).collect();
        match parsed {
            Ok(list) => {
                if out.insert(user, list).is_some() {
                    bad.push(fail(format!("user {user} listed twice")));
                }
            }
            Err(e) => bad.push(fail(format!("movie ids: {e}"))),
        }
    }
    if let Some(first) = bad.first() {
        bail!("{} malformed lines, first: {first}", bad.len());
    }
    Ok(out)
}

/// The peer's methods, in table order, with their display names.
const PEER_METHODS: [(&str, &str); 3] = [
    ("cosine", "implicit CosineRecommender (item-kNN)"),
    ("bm25", "implicit BM25Recommender (item-kNN)"),
    ("als", "implicit AlternatingLeastSquares"),
];

/// Runs the Python peer on the split in `dir` and reads its lists back.
pub(super) fn run_peer(args: &Args, dir: &Path) -> anyhow::Result<Vec<(String, Lists, Duration)>> {
    let venv = std::process::Command::new("bash")
        .arg(&args.venv_script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", args.venv_script.display()))?;
    if !venv.status.success() {
        bail!("{} failed ({})", args.venv_script.display(), venv.status);
    }
    let stdout = String::from_utf8(venv.stdout).context("venv script printed non-UTF-8")?;
    let python = stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{} printed no python path", args.venv_script.display()))?;
    let output = std::process::Command::new(python)
        .arg(&args.peer_script)
        .arg("--dir")
        .arg(dir)
        .args([
            "--n",
            &CANDIDATES.to_string(),
            "--seed",
            &args.seed.to_string(),
        ])
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("running {python} {}", args.peer_script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    if !output.status.success() {
        bail!("the implicit peer failed ({})", output.status);
    }
    let times: HashMap<&str, f64> = stderr
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next().and_then(|t| t.parse().ok())) {
                (Some("time"), Some(m), Some(t)) => Some((m, t)),
                _ => None,
            }
        })
        .collect();
    let mut out = Vec::new();
    for (method, name) in PEER_METHODS {
        let path = dir.join(format!("recs_{method}.tsv"));
        let file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let lists = read_peer_lists(&path, std::io::BufReader::new(file))?;
        let took = Duration::from_secs_f64(times.get(method).copied().unwrap_or(0.0).max(0.0));
        out.push((name.to_owned(), lists, took));
    }
    Ok(out)
}
