#!/usr/bin/env python3
"""Would a whitened PCA start help the Matryoshka-Adaptor's small prefixes? 1-NN accuracy per
prefix dim of PCA scores scaled by lambda^(-alpha/2) (alpha 0: plain PCA; 1: full whitening),
i.e. of the untrained adaptor such a start would give, scored as bench/adaptor.mjs scores
(cosine on prefixes centred by the database mean), in float64. PCA is fitted on the first
--fit-rows training embeddings. --validation N: the last N training rows are the queries and the
first --fit-rows the database (a choice of alpha without the test set); otherwise the test
embeddings against all training embeddings. Figures in packages/core/ADAPTOR.md (fifth round).

Usage: python3 bench/whitened_pca_1nn.py <run-dir> --dim 128 --fit-rows 15450 --dims 4,8,16,128
           [--validation 1717] [--alphas 0,0.125,0.25,0.375,0.5]
"""
import argparse

import numpy as np


def one_nn(db, db_labels, queries, query_labels, m):
    mean = db[:, :m].mean(0)
    d = db[:, :m] - mean
    q = queries[:, :m] - mean
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
    hits = 0
    for s in range(0, len(q), 2000):
        hits += (db_labels[(q[s : s + 2000] @ d.T).argmax(1)] == query_labels[s : s + 2000]).sum()
    return 100 * hits / len(q)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--fit-rows", type=int, required=True)
    p.add_argument("--dims", required=True)
    p.add_argument("--validation", type=int, default=0)
    p.add_argument("--alphas", default="0,0.125,0.25,0.375,0.5")
    a = p.parse_args()
    load = lambda split, what="": np.load(f"{a.run_dir}/embeddings/{split}-d{a.dim}{what}.npy")
    train = load("train").astype(np.float64)
    train_labels = load("train", ".labels")
    fit = train[: a.fit_rows]
    mean = fit.mean(0)
    lam, vec = np.linalg.eigh(np.cov((fit - mean).T, bias=True))
    order = np.argsort(-lam)
    lam, vec = lam[order], vec[:, order]
    if a.validation > 0:
        db, db_labels = fit, train_labels[: a.fit_rows]
        queries, query_labels = train[-a.validation :], train_labels[-a.validation :]
        what = f"validation: last {a.validation} training rows against the first {a.fit_rows}"
    else:
        db, db_labels = train, train_labels
        queries, query_labels = load("test").astype(np.float64), load("test", ".labels")
        what = f"test: {len(queries)} test rows against {len(db)} training rows"
    print(f"{a.run_dir} d={a.dim}, PCA on {a.fit_rows} rows; {what}")
    scores_db, scores_q = (db - mean) @ vec, (queries - mean) @ vec
    dims = [int(m) for m in a.dims.split(",")]
    for alpha in [float(x) for x in a.alphas.split(",")]:
        scale = lam ** (-alpha / 2)
        db_m, q_m = scores_db * scale, scores_q * scale
        row = " ".join(f"{m}:{one_nn(db_m, db_labels, q_m, query_labels, m):.2f}" for m in dims)
        print(f"alpha {alpha}: {row}", flush=True)


if __name__ == "__main__":
    main()
