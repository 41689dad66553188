#!/usr/bin/env python3
"""One FAISS method in its own process (called by bench/retrieval-isolated.mjs), so that its
peak RSS (ru_maxrss) is the data plus what this method builds.

Usage: python3 bench/faiss_method.py DIR SPEC_JSON
DIR holds db.npy and queries.npy (float32; normalised here: inner product = cosine). SPEC:
{"kind": "flat" | "hnsw" | "prefix-hnsw", "M": 32, "efC": 40, "efs": [64, 128], "m": 64,
 "K": 100, "threads": 2, "reps": 3, "k": 10}. Graph builds run on `threads` OpenMP threads,
searches on one (OpenBLAS too: the caller sets OPENBLAS_NUM_THREADS=1). Prints one JSON line:
rows (name, build_s, bytes = the serialized index: vectors + links, seconds, ids), dataRss,
peakRss (bytes).
"""
import json
import os
import resource
import sys
import tempfile
import time

import faiss
import numpy as np
from faiss_retrieval import best_of_timed, rerank, rss_bytes  # same folder: the shared helpers


def file_bytes(index, folder):
    fd, path = tempfile.mkstemp(dir=folder, suffix=".faiss")
    os.close(fd)
    try:
        faiss.write_index(index, path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


def main():
    folder, spec = sys.argv[1], json.loads(sys.argv[2])
    k, reps, threads = spec.get("k", 10), spec.get("reps", 3), spec.get("threads", 1)
    x = np.load(f"{folder}/db.npy")
    q = np.load(f"{folder}/queries.npy")
    faiss.normalize_L2(x)
    faiss.normalize_L2(q)
    n, d = x.shape
    data_rss = rss_bytes()
    rows = []
    kind = spec["kind"]
    # spec["indexFile"]: where the index is kept; when it exists already (a later paired
    # timing), it is read instead of built and spec["build_s"] reports the first build.
    index_file = spec.get("indexFile")
    if index_file is not None and os.path.exists(index_file):
        index = faiss.read_index(index_file)
        build_s = spec["build_s"]
    else:
        faiss.omp_set_num_threads(threads)
        t = time.perf_counter()
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
            index.add(x)
        else:
            dim = d if kind == "hnsw" else spec["m"]
            data = x if kind == "hnsw" else np.ascontiguousarray(x[:, :dim])
            if kind != "hnsw":
                faiss.normalize_L2(data)
            index = faiss.IndexHNSWFlat(dim, spec["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec["efC"]
            index.add(data)
            del data
        build_s = time.perf_counter() - t
        if index_file is not None:
            faiss.write_index(index, index_file)
    # Searches on one thread, also for an index read from its file (the caller's
    # OMP_NUM_THREADS is the build's thread count): the paired re-timings once searched on 2.
    faiss.omp_set_num_threads(1)
    assert faiss.omp_get_max_threads() == 1
    nbytes = os.path.getsize(index_file) if index_file is not None else file_bytes(index, folder)

    def row(name, fn, ef=None):
        seconds, cpu_seconds, ids = best_of_timed(reps, fn)
        rows.append(
            {
                "ef": ef,
                "name": name,
                "build_s": build_s,
                "bytes": nbytes,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "ids": np.asarray(ids, dtype=np.int64).reshape(-1).tolist(),
            }
        )

    if kind == "flat":
        row("FAISS IndexFlatIP", lambda: index.search(q, k)[1])
    elif kind == "hnsw":
        for ef in spec["efs"]:
            index.hnsw.efSearch = ef
            row("FAISS IndexHNSWFlat(%d) d=%d (efC=%d) ef=%d" % (spec["M"], d, spec["efC"], ef), lambda: index.search(q, k)[1], ef)
    else:
        m, shortlist = spec["m"], spec["K"]
        qm = np.ascontiguousarray(q[:, :m])
        faiss.normalize_L2(qm)

        def two_stage():
            return rerank(x, q, index.search(qm, shortlist)[1], k)

        for ef in spec["efs"]:
            index.hnsw.efSearch = max(ef, shortlist)
            row("FAISS HNSW%d m=%d (efC=%d) ef=%d K=%d -> %d (the paper's)" % (spec["M"], m, spec["efC"], ef, shortlist, d), two_stage, ef)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump({"faiss": faiss.__version__, "rows": rows, "dataRss": data_rss, "peakRss": peak}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
