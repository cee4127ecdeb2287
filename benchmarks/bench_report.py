"""The Markdown of benchmarks/README.md's results block, from a run's (or a merged baseline's) JSON."""

from __future__ import annotations

from pathlib import Path


def render_readme_table(result) -> str:
    env = result["machine"]
    lines = [
        f"Machine: {env['processor']}, {env['n_cpus']} cores (shared), Python {env['python']}, numpy {env['numpy']}, "
        f"numba {env['numba']} (SVML: {env['numba_svml']}), torch {env.get('torch')}, transformers "
        f"{env.get('transformers')}, 1 thread. Each section's run and load average (1, 5, 15 min) at its start "
        "and end:", ""]
    for name, run in result.get("runs", {}).items():
        lines.append(f"- {name}: {run['started_at']}, load {_load(run['load_average_start'])} -> "
                     f"{_load(run['load_average_end'])}")
    lines.append("")
    if "copy_bandwidth" in result:
        lines += _kernel_tables(result)
    lines += _huffman_table(result["summary"]["table"])
    if "lm" in result:
        import bench_lm

        lines += bench_lm.render(result["lm"])
    lines += ["", "Must-show figures of the issues:", "", "| claim | measured | passes | detail |", "|---|---|---|---|"]
    for m in result["must_show"]:
        lines.append(f"| {m['claim']} | {m['measured']} | {'yes' if m['passes'] else '**no**'} | {m['detail']} |")
    return "\n".join(lines)


def _load(values):
    return "?" if values is None else "/".join(f"{v:.1f}" for v in values)


def _huffman_table(table) -> list[str]:
    rows = [e for e in table if e["kernel"] == "huffman" and "argsort_s" in e]
    if not rows:
        return []
    lines = ["", "Huffman beside numpy.argsort (default kind) of the same float64 masses and constriction's "
             "`EncoderHuffmanTree` (median / min of the repeats):", "",
             "| n | kernel | numpy.argsort | kernel / argsort | constriction tree | constriction / kernel |",
             "|---|---|---|---|---|---|"]
    for e in rows:
        con = (f"{_fmt(e['constriction_s'])} / {_fmt(e['constriction_min_s'])} | {e['constriction_vs_numba']:.2f}x"
               if "constriction_s" in e else "– | –")
        lines.append(f"| {e['n']:.0e} | {_fmt(e['numba_s'])} / {_fmt(e['numba_min_s'])} | {_fmt(e['argsort_s'])} / "
                     f"{_fmt(e['argsort_min_s'])} | {e['vs_argsort']:.2f}x | {con} |")
    return lines


def _fmt(s):
    if s is None:
        return "–"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _kernel_tables(result) -> list[str]:
    copy = result["copy_bandwidth"]
    lines = [
        f"Copy bandwidth (np.copyto, 80 MB, read + write): **{copy['numpy_copyto']['GB_per_s']:.2f} GB/s**; "
        f"numba copy loop {copy['numba_loop']['GB_per_s']:.2f} GB/s (the latest kernel run's; each row's share "
        "of copy bandwidth uses the copy bandwidth measured in its own run).",
        "",
        "| kernel | n | work units | numba | numpy | plain Python | numba vs Python | numba vs numpy | M units/s | GB/s (share of copy) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    fmt = _fmt
    for e in result["summary"]["table"]:
        bw = (f"{e['GB_per_s']:.2f} ({e['fraction_of_copy_bandwidth']:.0%})" if "GB_per_s" in e else "–")
        lines.append(
            f"| {e['kernel']} | {e['n']:.0e} | {e['nodes']:,} | {fmt(e['numba_s'])} | {fmt(e['numpy_s'])} | "
            f"{fmt(e['python_s'])} | {'%.0fx' % e['speedup_vs_python'] if e['speedup_vs_python'] else '–'} | "
            f"{'%.2fx' % e['speedup_vs_numpy'] if e['speedup_vs_numpy'] else '–'} | {e['M_nodes_per_s']:.1f} | {bw} |")
    lines += ["", "First call of each kernel in a fresh process (compile apart from steady state):", "",
              "| kernel | first call, empty cache (compile) | first call, warm cache | second call |", "|---|---|---|---|"]
    cold, warm = result["compile"]["cold_cache"], result["compile"]["warm_cache"]
    for k in cold:
        if k == "import_s":
            continue
        lines.append(f"| {k} | {cold[k]['first_call_s'] * 1e3:.0f} ms | {warm[k]['first_call_s'] * 1e3:.1f} ms | "
                     f"{warm[k]['second_call_s'] * 1e6:.0f} µs |")
    lines.append(f"| (import tokentree._kernels) | {cold['import_s'] * 1e3:.0f} ms | {warm['import_s'] * 1e3:.0f} ms | |")
    return lines


def update_readme(path: Path, text: str) -> None:
    """Replace what lies between the results markers of ``path`` with ``text``."""
    body = path.read_text(encoding="utf-8")
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in body or end not in body:
        raise SystemExit(f"{path} lacks the {start} / {end} markers")
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")
