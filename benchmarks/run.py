#!/usr/bin/env python
"""Run every tokentree benchmark: numba kernel vs best numpy formulation vs plain-Python reference.

    python benchmarks/run.py                 # full run (10^3..10^7 nodes; ~10 min on 2 cores)
    python benchmarks/run.py --quick         # sizes up to 10^5 (about a minute)
    python benchmarks/run.py --only huffman  # one kernel
    python benchmarks/run.py --only lm       # the LM benchmarks (ours vs transformers.Trainer; ~4 min)

What it does, in order: pins one thread (NUMBA_NUM_THREADS=1, OMP/MKL/OPENBLAS=1) so numbers do not
depend on the neighbours; records the machine (CPU model, cores, numba SVML, library versions);
measures this machine's copy bandwidth (np.copyto of 80 MB); measures numba first-call (compile)
time in fresh processes, with an empty cache and with a warm cache, apart from steady state; then
for each kernel and size checks that all implementations return the same result, warms up, and
times repeats (median and IQR). ``lm`` (``bench_lm.py``) times the LM training loop against
``transformers.Trainer``, the padded against the packed read-out, and generation. Results go to ``benchmarks/results/<UTC time>.json`` and
``benchmarks/results/latest.json``; ``--baseline NAME`` also writes ``benchmarks/baselines/NAME.json``
and ``--readme`` rewrites the results table in ``benchmarks/README.md``. A partial run (``--only``)
merged into a baseline replaces only what it ran; every section keeps its own time and load.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import bench_coding  # noqa: E402
import bench_prune  # noqa: E402
import bench_report  # noqa: E402
import bench_tree  # noqa: E402

KERNELS = [("build_trie", bench_tree), ("subtree", bench_tree), ("mix", bench_tree), ("prune", bench_prune),
           ("huffman", bench_coding)]
SECTIONS = [name for name, _ in KERNELS] + ["lm"]
IMPLS = ("numba", "numpy", "python", "public", "argsort", "constriction")
HUFFMAN_VS_ARGSORT_MAX = 1.5  # the goal: Huffman at 10^7 in <= 1.5x numpy.argsort of the same masses


def machine() -> dict:
    import numba

    from tokentree.harness import environment

    env = environment()
    env["numba_svml"] = bool(getattr(numba.config, "USING_SVML", False))
    env["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
    env["numba_threading_layer"] = os.environ.get("NUMBA_THREADING_LAYER", "default")
    try:
        env["load_average"] = os.getloadavg()
    except OSError:
        env["load_average"] = None
    return env


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def measure(fn, state, *, min_reps=3, max_reps=15, budget_s=1.0) -> dict:
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn(state)
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= max_reps or (len(times) >= min_reps and elapsed >= budget_s):
            break
        if times[0] > 5 * budget_s and len(times) >= 1:  # a slow reference: one timing is enough
            break
    a = np.array(times)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return {"median_s": float(q50), "iqr_s": float(q75 - q25), "min_s": float(a.min()), "reps": len(times)}


def copy_bandwidth(n=10**7) -> dict:
    """Bytes moved per second by np.copyto (read + write) and by a numba copy loop, 80 MB arrays."""
    from numba import njit

    @njit
    def copy_loop(dst, src):
        for i in range(src.shape[0]):
            dst[i] = src[i]

    src = np.random.default_rng(0).random(n)
    dst = np.empty_like(src)
    copy_loop(dst, src)
    res = {}
    for name, fn in (("numpy_copyto", lambda s: np.copyto(dst, src)), ("numba_loop", lambda s: copy_loop(dst, src))):
        m = measure(fn, None, min_reps=7, max_reps=21, budget_s=1.0)
        res[name] = {**m, "GB_per_s": 2 * src.nbytes / m["median_s"] / 1e9}
    res["bytes_per_element"] = 16
    res["n_elements"] = n
    return res


COMPILE_SCRIPT = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    from tokentree import _kernels as K
    t_import = time.perf_counter() - t0
    i1 = np.array([0, 1], dtype=np.int64)
    off = np.array([0, 1, 2], dtype=np.int64)
    w = np.ones(2)
    calls = {
        "build_trie": lambda: K.build_trie(i1, off, w, 2, np.empty((14, 2), dtype=np.int64)),
        "children_from_parent": lambda: K.children_from_parent(np.array([-1, 0, 0], dtype=np.int64)),
        "subtree_from_eos": lambda: K.subtree_from_eos(np.array([0.0, 0.5, 0.5]), np.array([1, 3, 3]), np.array([2, 0, 0]),
                                                       np.empty(3)),
        "prune_into": lambda: K.prune_into(np.array([0.0, 0.5, 0.5]), np.array([1.0, 0.5, 0.5]), np.array([1, 3, 3]),
                                           np.array([2, 0, 0]), 0, np.empty(1), np.empty(1, dtype=np.int64),
                                           np.empty(1, dtype=np.int64)),
        "mix_masses": lambda: K.mix_masses(np.zeros(2), np.ones(2), np.array([0, -1]), 0.5),
        "huffman_lengths": lambda: K.huffman_lengths(np.array([0.5, 0.25, 0.25])),
        "union_nodes": lambda: K.union_nodes(np.array([1, 3, 3]), np.array([2, 0, 0]), np.array([-1, 0, 1]),
                                             np.array([1, 2]), np.array([1, 0]), np.array([-1, 1])),
    }
    out = {"import_s": t_import}
    for name, call in calls.items():
        t = time.perf_counter(); call(); first = time.perf_counter() - t
        t = time.perf_counter(); call(); second = time.perf_counter() - t
        out[name] = {"first_call_s": first, "second_call_s": second}
    print(json.dumps(out))
""")


def compile_times() -> dict:
    """First-call time of each kernel in fresh processes: empty numba cache (compile), then warm cache."""
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache", "warm_cache"):
            proc = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, env=env,
                                  timeout=600, cwd=str(HERE.parent))
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
            res[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


def run_kernel(name, module, sizes, *, python_max, log, notes, copy_GB_per_s=None) -> list[dict]:
    setup = getattr(module, f"setup_{name}")
    nodes = getattr(module, f"nodes_{name}")
    check = getattr(module, f"check_{name}")
    bytes_per_node = getattr(module, f"BYTES_{name}", None)
    pmax = min(python_max, getattr(module, f"PYTHON_MAX_{name}", python_max))
    npmax = getattr(module, f"NUMPY_MAX_{name}", None)
    extra = getattr(module, f"extra_{name}", None)
    tracks = [getattr(module, a) for a in dir(module) if a.startswith(f"track_{name}")]
    for impl, why in getattr(module, f"SKIP_{name}", {}).items():
        notes.append({"section": name, "note": f"{impl} skipped: {why}"})
        log(f"  {name:<11} {impl} skipped: {why}")
    # agreement first, at the smallest size (honest: every timed formulation computes the same thing)
    check(setup(sizes[0]))
    rows = []
    for n in sizes:
        state = setup(n)
        info = {"kernel": name, "n": n, "nodes": nodes(state)}
        if extra:
            info.update(extra(state))
        for track in tracks:
            info[track.__name__] = track(state)
        for impl in IMPLS:
            fn = getattr(module, f"time_{name}_{impl}", None)
            if fn is None:
                continue
            if impl == "python" and n > pmax:
                continue
            if impl == "numpy" and npmax is not None and n > npmax:
                continue
            if impl not in ("python", "constriction"):  # (constriction: compiled Rust; 75 s a call at 10^7)
                fn(state)  # warm-up (the numba compile is measured separately)
            gc.collect()
            m = measure(fn, state, budget_s=1.0 if impl != "python" else 2.0)
            row = {**info, "impl": impl, **m, "nodes_per_s": info["nodes"] / m["median_s"],
                   "copy_GB_per_s": copy_GB_per_s}  # the copy bandwidth of this run, for the share below
            if bytes_per_node:
                row["GB_per_s"] = bytes_per_node * info["nodes"] / m["median_s"] / 1e9
            rows.append(row)
            log(f"  {name:<11} n={n:>9,} {impl:<7} {m['median_s'] * 1e3:12.3f} ms  "
                f"({row['nodes_per_s'] / 1e6:8.2f} M nodes/s{', %.2f GB/s' % row['GB_per_s'] if bytes_per_node else ''})")
        del state
        gc.collect()
    return rows


def summarise(rows, copy, compile_) -> dict:
    def get(kernel, n, impl):
        for r in rows:
            if r["kernel"] == kernel and r["n"] == n and r["impl"] == impl:
                return r
        return None

    table = []
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        for n in dict.fromkeys(r["n"] for r in rows if r["kernel"] == kernel):
            nb, npy, py = get(kernel, n, "numba"), get(kernel, n, "numpy"), get(kernel, n, "python")
            pub = get(kernel, n, "public")
            arg, con = get(kernel, n, "argsort"), get(kernel, n, "constriction")
            entry = {"kernel": kernel, "n": n, "nodes": nb["nodes"], "numba_s": nb["median_s"],
                     "numba_iqr_s": nb["iqr_s"], "numpy_s": npy["median_s"] if npy else None,
                     "python_s": py["median_s"] if py else None, "public_s": pub["median_s"] if pub else None,
                     "speedup_vs_python": py["median_s"] / nb["median_s"] if py else None,
                     "speedup_vs_numpy": npy["median_s"] / nb["median_s"] if npy else None,
                     "M_nodes_per_s": nb["nodes_per_s"] / 1e6, "numba_min_s": nb["min_s"]}
            if arg:
                entry.update(argsort_s=arg["median_s"], argsort_min_s=arg["min_s"],
                             vs_argsort=nb["median_s"] / arg["median_s"], vs_argsort_of_min=nb["min_s"] / arg["min_s"])
            if con:
                entry.update(constriction_s=con["median_s"], constriction_min_s=con["min_s"],
                             constriction_vs_numba=con["median_s"] / nb["median_s"])
            if "GB_per_s" in nb:
                entry["GB_per_s"] = nb["GB_per_s"]
                entry["fraction_of_copy_bandwidth"] = nb["GB_per_s"] / (nb.get("copy_GB_per_s")
                                                                        or copy["numpy_copyto"]["GB_per_s"])
            table.append(entry)
    return {"table": table}


def must_show(summary, rows) -> list[dict]:
    """The issue's must-show figures, each with the measured value and pass/fail."""
    t = {(e["kernel"], e["n"]): e for e in summary["table"]}
    out = []

    def add(what, value, ok, detail):
        out.append({"claim": what, "measured": value, "passes": bool(ok), "detail": detail})

    for kernel, n, label in (("build_trie", 10**6, "build a tree from 10^6 sampled sequences"),
                             ("prune", 10**6, "prune a 10^6-node tree"),
                             ("huffman", 10**6, "Huffman code lengths of 10^6 symbols")):
        e = t.get((kernel, n))
        if e is None:
            continue
        if e["speedup_vs_python"] is not None:
            add(f"{label}: >= 10x faster than the plain-Python reference", round(e["speedup_vs_python"], 1),
                e["speedup_vs_python"] >= 10, f"numba {e['numba_s']:.4g} s vs python {e['python_s']:.4g} s")
        if e["speedup_vs_numpy"] is not None:
            add(f"{label}: no slower than the numpy formulation", round(e["speedup_vs_numpy"], 2),
                e["speedup_vs_numpy"] >= 1.0, f"numba {e['numba_s']:.4g} s vs numpy {e['numpy_s']:.4g} s")
    e = t.get(("huffman", 10**6))
    if e is not None:
        public = e["public_s"] if e["public_s"] is not None else e["numba_s"]
        add("Huffman on 10^6 symbols < 1 s (public huffman_code_lengths, validation included)",
            round(public, 4), public < 1.0, "seconds, median")
    for kernel in ("subtree", "mix"):
        big = [e for e in summary["table"] if e["kernel"] == kernel]
        if big:
            e = max(big, key=lambda x: x["n"])
            add(f"additive pass {kernel} at {e['n']:,} nodes: >= 50% of copy bandwidth",
                round(e["fraction_of_copy_bandwidth"], 3), e["fraction_of_copy_bandwidth"] >= 0.5,
                f"{e['GB_per_s']:.2f} GB/s effective")
    e = t.get(("huffman", 10**7))
    if e is not None and "vs_argsort" in e:
        add(f"Huffman code lengths of 10^7 symbols: <= {HUFFMAN_VS_ARGSORT_MAX}x numpy.argsort (default kind) of the "
            "same masses", round(e["vs_argsort"], 3), e["vs_argsort"] <= HUFFMAN_VS_ARGSORT_MAX,
            f"kernel {e['numba_s']:.3g} s (min {e['numba_min_s']:.3g}) vs argsort {e['argsort_s']:.3g} s "
            f"(min {e['argsort_min_s']:.3g}); ratio of minima {e['vs_argsort_of_min']:.3f}")
        has_con = "constriction_s" in e
        add("Huffman at 10^7 beside numpy.argsort and constriction, in one run", int(has_con), has_con,
            f"constriction's tree {e['constriction_s']:.3g} s = {e['constriction_vs_numba']:.2f}x the kernel"
            if has_con else "constriction not installed")
    diffs = [r.get("track_huffman_vs_heapq_abs_diff") for r in rows if r["kernel"] == "huffman"]
    diffs = [d for d in diffs if d is not None]
    if diffs:
        add("Huffman E[L] equals the heapq implementation to 1e-9 (all sizes with a reference)", max(diffs),
            max(diffs) <= 1e-9, "max |E[L] numba - E[L] heapq| in bits")
    return out


def merge(old: dict | None, new: dict) -> dict:
    """``new`` over ``old`` (a baseline): the sections ``new`` ran replace old ones, the rest is kept;
    the summary and must-show figures are recomputed from the merged rows."""
    if old is None or old.get("schema") != new["schema"]:
        merged = dict(new)
    else:
        ran = set(new["runs"])
        merged = {**old, "started_at": new["started_at"], "machine": new["machine"]}
        old_copy = old.get("copy_bandwidth", {}).get("numpy_copyto", {}).get("GB_per_s")
        merged["rows"] = [{"copy_GB_per_s": old_copy, **r} for r in old.get("rows", []) if r["kernel"] not in ran]
        merged["rows"] += new["rows"]
        before = {r["kernel"]: {"started_at": old["started_at"], "load_average_start": old["machine"].get("load_average"),
                                "load_average_end": None} for r in old.get("rows", [])}  # baselines before "runs"
        merged["runs"] = {**before, **old.get("runs", {}), **new["runs"]}
        for key in ("copy_bandwidth", "compile", "lm"):
            if key in new:
                merged[key] = new[key]
        merged["notes"] = [n for n in old.get("notes", []) if n["section"] not in ran] + new["notes"]
    present = {r["kernel"] for r in merged["rows"]} | ({"lm"} if "lm" in merged else set())
    merged["runs"] = {k: v for k, v in merged["runs"].items() if k in present}
    merged["summary"] = summarise(merged["rows"], merged.get("copy_bandwidth"), merged.get("compile"))
    merged["must_show"] = must_show(merged["summary"], merged["rows"])
    if "lm" in merged:
        import bench_lm

        merged["must_show"] += bench_lm.must_show(merged["lm"])
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="sizes up to 10^5 (Python reference up to 10^4); "
                        "LM: nano and mini, fewer steps")
    parser.add_argument("--only", nargs="*", default=None, help="sections to run: " + ", ".join(SECTIONS))
    parser.add_argument("--max-size", type=float, default=None, help="largest n to run")
    parser.add_argument("--python-max", type=float, default=None, help="largest n for the plain-Python reference")
    parser.add_argument("--no-pretrained", action="store_true", help="LM: skip the pretrained model (SmolLM2-135M)")
    parser.add_argument("--baseline", default=None, help="also merge the results into benchmarks/baselines/NAME.json")
    parser.add_argument("--readme", action="store_true", help="rewrite the results in benchmarks/README.md from the "
                        "merged baseline (needs --baseline)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(SECTIONS))
    if unknown or (args.readme and not args.baseline):
        parser.error(f"--only takes {', '.join(SECTIONS)}; got {unknown}" if unknown else "--readme needs --baseline")
    wanted = [name for name in SECTIONS if not args.only or name in args.only]
    max_size = 10**5 if args.quick else (args.max_size or 10**7)
    python_max = 10**4 if args.quick else (args.python_max or 10**6)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    result = {"schema": "tokentree.bench/1", "started_at": started.isoformat(timespec="seconds"), "machine": machine(),
              "runs": {}, "rows": [], "notes": []}
    log(f"machine: {result['machine']['processor']}, {result['machine']['n_cpus']} cores, "
        f"load {result['machine']['load_average']}")
    if any(name != "lm" for name in wanted):
        result["copy_bandwidth"] = copy_bandwidth()
        log(f"copy bandwidth: {result['copy_bandwidth']['numpy_copyto']['GB_per_s']:.2f} GB/s (np.copyto)")
        result["compile"] = compile_times()
        log("compile (cold cache, ms): " + ", ".join(
            f"{k}={v['first_call_s'] * 1e3:.0f}" for k, v in result["compile"]["cold_cache"].items() if k != "import_s"))
    for name in wanted:
        run = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "load_average_start": load_average()}
        if name == "lm":
            import bench_lm

            result["lm"] = bench_lm.run(quick=args.quick, pretrained=not args.no_pretrained, log=log)
            result["notes"] += [{"section": "lm", "note": n} for n in result["lm"]["notes"]]
        else:
            module = dict(KERNELS)[name]
            sizes = [n for n in getattr(module, f"SIZES_{name}") if n <= max_size]
            result["rows"] += run_kernel(name, module, sizes, python_max=python_max, log=log, notes=result["notes"],
                                         copy_GB_per_s=result["copy_bandwidth"]["numpy_copyto"]["GB_per_s"])
        result["runs"][name] = {**run, "load_average_end": load_average()}
    result = merge(None, result)
    result["wall_time_s"] = time.perf_counter() - t0
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for path in (out_dir / f"{stamp}.json", out_dir / "latest.json"):
        path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    shown = result
    if args.baseline:
        path = HERE / "baselines" / f"{args.baseline}.json"
        path.parent.mkdir(exist_ok=True)
        shown = merge(json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None, result)
        path.write_text(json.dumps(shown, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    table = bench_report.render_readme_table(shown)
    print()
    print(table)
    if args.readme:
        bench_report.update_readme(HERE / "README.md", table)
    failed = [m for m in result["must_show"] if not m["passes"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
