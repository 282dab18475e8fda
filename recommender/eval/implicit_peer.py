"""The library peer of `recommender evaluate`: the `implicit` package's
item-kNN (CosineRecommender, BM25Recommender) and ALS, trained on exactly
the split the Rust command wrote, their top-N written back for Rust to score
with the same metric code as cinerec's model.

Input (in --dir): train.tsv, one `user<TAB>movie` training like per line;
users.tsv, one evaluated user per line. Output: recs_<method>.tsv, one
`user<TAB>movie movie ...` line per evaluated user, best first, the user's
training likes filtered out (the Rust side also drops every other movie the
user has seen before scoring). Timings go to stderr as `time <method> <s>`.
"""

import argparse
import os
import sys
import time

# One BLAS thread: implicit parallelises itself, and the box has 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender  # noqa: E402


def read_pairs(path):
    users, movies = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split("\t")
            if len(parts) != 2:
                sys.exit(f"{path}:{n}: expected user<TAB>movie, got {line!r}")
            users.append(int(parts[0]))
            movies.append(int(parts[1]))
    return np.array(users, dtype=np.int64), np.array(movies, dtype=np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--n", type=int, default=50, help="recommendations per user")
    ap.add_argument("--knn-k", type=int, default=100, help="neighbours kept per item")
    ap.add_argument("--als-factors", type=int, default=64)
    ap.add_argument("--als-iterations", type=int, default=15)
    ap.add_argument("--als-regularization", type=float, default=0.05)
    ap.add_argument("--als-alpha", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--methods", default="cosine,bm25,als")
    args = ap.parse_args()

    users, movies = read_pairs(os.path.join(args.dir, "train.tsv"))
    with open(os.path.join(args.dir, "users.tsv")) as f:
        eval_users = np.array([int(line) for line in f if line.strip()], dtype=np.int64)

    # Dense indices for the sparse matrix; ids map back on output.
    user_ids, user_index = np.unique(np.concatenate([users, eval_users]), return_inverse=True)
    movie_ids, movie_index = np.unique(movies, return_inverse=True)
    train_rows = user_index[: len(users)]
    eval_rows = user_index[len(users):]
    user_items = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (train_rows, movie_index)),
        shape=(len(user_ids), len(movie_ids)),
    )
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    print(
        f"peer: {user_items.shape[0]} users x {user_items.shape[1]} movies, "
        f"{user_items.nnz} training likes, {len(eval_rows)} evaluated users",
        file=sys.stderr,
    )

    for method in args.methods.split(","):
        if method == "cosine":
            model = CosineRecommender(K=args.knn_k, num_threads=args.threads)
            fit_on = user_items
        elif method == "bm25":
            model = BM25Recommender(K=args.knn_k, num_threads=args.threads)
            fit_on = user_items
        elif method == "als":
            model = AlternatingLeastSquares(
                factors=args.als_factors,
                iterations=args.als_iterations,
                regularization=args.als_regularization,
                alpha=args.als_alpha,
                num_threads=args.threads,
                random_state=args.seed,
            )
            fit_on = user_items
        else:
            sys.exit(f"unknown method {method!r} (cosine, bm25, als)")
        start = time.monotonic()
        model.fit(fit_on, show_progress=False)
        n = min(args.n, len(movie_ids))
        ids, _scores = model.recommend(
            eval_rows, user_items[eval_rows], N=n, filter_already_liked_items=True
        )
        took = time.monotonic() - start
        out = os.path.join(args.dir, f"recs_{method}.tsv")
        with open(out + ".part", "w") as f:
            for row, recs in zip(eval_rows, ids):
                # implicit pads short lists with -1.
                named = " ".join(str(movie_ids[i]) for i in recs if i >= 0)
                f.write(f"{user_ids[row]}\t{named}\n")
        os.replace(out + ".part", out)
        print(f"time {method} {took:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
