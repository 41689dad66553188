#!/usr/bin/env python3
"""How far quantising the first stage's prefix vectors alone limits a two-stage search, with no
graph in the way: for each prefix dim m and shortlist K, the recall@10 (against exact cosine
search at the full dim) of an exact scan of the quantised m-prefixes, float32 vs float16 vs
int8 as usearch makes it (each unit prefix x 127, truncated) vs int8 after centring and
per-dim scaling (the database centred, the query kept in float: inner-product ranking is
unchanged by both, so only the rounding is left).

Usage: python3 bench/prefix_quantisation_recall.py db.npy queries.npy [--queries 500]
"""
import argparse

import numpy as np


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("queries")
    ap.add_argument("--queries", dest="nq", type=int, default=500)
    ap.add_argument("--dims", default="32,48,64")
    ap.add_argument("--shortlists", default="32,40,48,64")
    args = ap.parse_args()
    x = np.load(args.db).astype(np.float32)
    q = np.load(args.queries)[: args.nq].astype(np.float32)
    true = np.argsort(-(unit(q) @ unit(x).T), axis=1)[:, :10]

    def recall(scores, k):
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        return np.mean([len(set(true[i]) & set(top[i])) / 10 for i in range(len(q))])

    print("m   K   float32  float16  int8(usearch)  int8(centred, per-dim scale, float query)")
    for m in map(int, args.dims.split(",")):
        p, pq = unit(x[:, :m]), unit(q[:, :m])
        half = p.astype(np.float16).astype(np.float32) @ pq.astype(np.float16).astype(np.float32).T
        i8 = np.trunc(p * 127) @ np.trunc(pq * 127).T
        mu, sd = p.mean(0), p.std(0)
        c = (p - mu) / sd
        scale = 127 / np.percentile(np.abs(c), 99.9)
        centred = np.clip(np.round(c * scale), -127, 127) @ (pq * sd).T
        for k in map(int, args.shortlists.split(",")):
            row = [recall(s, k) for s in (pq @ p.T, half.T, i8.T, centred.T)]
            print(f"{m:<3d} {k:<3d} " + "  ".join(f"{r:7.4f}" for r in row))


if __name__ == "__main__":
    main()
