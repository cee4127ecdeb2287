"""``elasticity demo``: the token-tree core at work on one Pareto token tree.

Builds a Pareto token tree (Assumption A.7), prunes it at depths 1..D (Def. 3.3(a)), Huffman-codes
each pruned tree (Def. 3.3(b)), and prints one row per depth: M, H, E[L_Huffman], ceil(H), the
ideal code length of Thm 3.4 next to the exact Huffman block length for a response of ``--length``
tokens, and the compression rate and normalized rate (Def. 4.1) in bits per token of the tree's
own data under two models: the tree itself (the ideal model) and an empirical model fitted to
``--n-samples`` responses drawn from the tree (smoothed, since a finite sample misses leaves).

Writes ``OUT/summary.json`` (:func:`tokentree.harness.write_summary`; the claims are the exact
checks, tier ``verification``: Huffman bounds, Kraft equality, mass conservation, Thm 3.4's block
code, the sign of the normalized rate), ``OUT/demo_table.csv`` and ``OUT/fig_demo.png``.
matplotlib is imported inside :func:`plot` only. A bad option value raises
:class:`~tokentree.errors.ConfigError` (a user error: ``elasticity`` prints it as one line, exit 2).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

__all__ = ["DemoConfig", "add_arguments", "main", "run", "plot"]

COLUMNS = ["depth", "n_leaves", "entropy_bits", "huffman_bits_per_block", "ceil_entropy_bits",
           "paper_code_length_bits", "huffman_code_length_bits", "kraft_sum", "rate_ideal_bits_per_token",
           "normalized_rate_ideal_bits_per_token", "rate_model_bits_per_token",
           "normalized_rate_model_bits_per_token"]


def _option(default, must: str, ok):
    """A :class:`DemoConfig` field: its default and the range of its values (``ok(value)``; ``must`` says it)."""
    return field(default=default, metadata={"must": must, "ok": ok})


def _int_from(low: int, *, default: int):
    """A :class:`DemoConfig` field that must be an int >= ``low``."""
    return _option(default, f"an int >= {low}", lambda v: isinstance(v, int) and v >= low)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """The demo's options; each field states its default and its range, checked in field order."""

    depth: int = _option(10, "an int in [1, 24]", lambda v: isinstance(v, int) and 1 <= v <= 24)
    alpha: float = _option(2.0, "a finite float > 1", lambda v: v > 1 and math.isfinite(v))
    branching: int = _int_from(2, default=2)
    seed: int = _int_from(0, default=0)
    length: int = _int_from(1, default=64)
    n_samples: int = _int_from(1, default=5_000)
    smoothing: float = _option(1e-3, "a float in (0, 1)", lambda v: 0 < v < 1)
    #: Absolute float tolerance of the exact checks: |total mass - 1| after pruning, and the ideal
    #: model's normalized rate H - log2 M <= tolerance (pre-registered; not a CLI option).
    tolerance: float = _option(1e-12, "a float in [0, 1e-6)", lambda v: 0 <= v < 1e-6)
    #: Absolute tolerance (bits) of Thm 3.4's lower bound (|x|/d)·H <= exact Huffman block length.
    block_tolerance: float = _option(1e-9, "a float in [0, 1e-3)", lambda v: 0 <= v < 1e-3)

    def __post_init__(self) -> None:
        from .harness import check_range

        for f in fields(self):
            value = getattr(self, f.name)
            check_range(f.name, value, f.metadata["ok"](value), f.metadata["must"])
        n_nodes = (self.branching ** self.depth - 1) // (self.branching - 1)
        check_range("depth", self.depth, n_nodes <= 10**7,
                    f"small enough that (branching^depth - 1)/(branching - 1) <= 1e7 nodes (branching={self.branching})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    parser.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    parser.add_argument("--depth", type=int, default=d.depth, help=f"tree depth D; pruned at 1..D (default {d.depth})")
    parser.add_argument("--alpha", type=float, default=d.alpha, help=f"Pareto shape alpha > 1 (default {d.alpha})")
    parser.add_argument("--branching", type=int, default=d.branching,
                        help=f"vocabulary size V >= 2 (default {d.branching}, the paper's binary tree)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--length", type=int, default=d.length,
                        help=f"response length |x| for Thm 3.4's code length (default {d.length})")
    parser.add_argument("--n-samples", type=int, default=d.n_samples,
                        help=f"responses the empirical model is fitted to (default {d.n_samples})")
    parser.add_argument("--smoothing", type=float, default=d.smoothing,
                        help=f"uniform smoothing of the empirical model (default {d.smoothing})")


def run(config: DemoConfig) -> tuple[list[dict], dict]:
    """Compute the table (one dict per depth) and the exact checks; no files are written."""
    import tokentree as tt

    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(1)[0])
    tree = tt.pareto_tree(config.depth, config.branching, config.alpha, seed=rng)
    flat, offsets = tree.sample(config.n_samples, seed=rng, flat=True)
    model = tt.TokenTree.from_sequences(flat, config.branching, offsets=offsets)
    rows = []
    checks = {"huffman_bounds": True, "kraft": True, "mass_conserved": True, "max_mass_error": 0.0}
    for d in range(1, config.depth + 1):
        pruned = tt.prune(tree, d)
        p = tt.leaf_masses(pruned)
        lengths = tt.huffman_code_lengths(p / p.sum())
        icl = tt.ideal_code_length(tree, d, config.length)
        kraft = tt.kraft_sum(lengths) if p.size > 1 else 1.0
        err = abs(float(pruned.eos_mass.sum()) - 1.0)
        checks["max_mass_error"] = max(checks["max_mass_error"], err)
        checks["mass_conserved"] &= err <= config.tolerance
        checks["huffman_bounds"] &= icl.within_bounds
        checks["kraft"] &= (kraft == 1.0)
        rows.append({
            "depth": d,
            "n_leaves": icl.n_leaves,
            "entropy_bits": icl.entropy_bits,
            "huffman_bits_per_block": icl.huffman_block_bits,
            "ceil_entropy_bits": math.ceil(icl.entropy_bits - 1e-12),
            "paper_code_length_bits": icl.paper_bits,
            "huffman_code_length_bits": icl.huffman_bits,
            "kraft_sum": kraft,
            "rate_ideal_bits_per_token": tt.compression_rate(tree, tree, d, per_token=True),
            "normalized_rate_ideal_bits_per_token": tt.normalized_compression_rate(tree, tree, d, per_token=True),
            "rate_model_bits_per_token": tt.compression_rate(tree, model, d, per_token=True,
                                                             smoothing=config.smoothing),
            "normalized_rate_model_bits_per_token": tt.normalized_compression_rate(
                tree, model, d, per_token=True, smoothing=config.smoothing),
        })
    return rows, checks


def format_table(rows: list[dict]) -> str:
    heads = ["d", "M", "H", "E[L_huff]", "ceil(H)", "Thm3.4", "Huffman", "gamma", "gamma_norm",
             "gamma_mod", "gnorm_mod"]
    keys = ["depth", "n_leaves", "entropy_bits", "huffman_bits_per_block", "ceil_entropy_bits",
            "paper_code_length_bits", "huffman_code_length_bits", "rate_ideal_bits_per_token",
            "normalized_rate_ideal_bits_per_token", "rate_model_bits_per_token",
            "normalized_rate_model_bits_per_token"]
    cells = [[f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def plot(rows: list[dict], config: DemoConfig, path: Path) -> Path:
    """Two panels: per-block lengths (H, E[L_Huffman], ceil(H), log2 M) and per-token rates, against depth."""
    from .harness import pyplot, save_figure

    plt = pyplot()
    d = [r["depth"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(d, [r["entropy_bits"] for r in rows], "o-", label="H (bits/block)")
    ax1.plot(d, [r["huffman_bits_per_block"] for r in rows], "s--", label="E[L_Huffman]")
    ax1.step(d, [r["ceil_entropy_bits"] for r in rows], where="mid", label="ceil(H) (Thm 3.4)")
    ax1.plot(d, [math.log2(r["n_leaves"]) for r in rows], ":", color="gray", label="log2 M")
    ax1.set_xlabel("pruning depth d")
    ax1.set_ylabel("bits per block")
    ax1.set_title("Huffman coding of the pruned tree")
    ax1.legend(fontsize=8)
    ax2.plot(d, [r["rate_ideal_bits_per_token"] for r in rows], "o-", label="γ = H×/d, ideal model (= H/d)")
    ax2.plot(d, [r["rate_model_bits_per_token"] for r in rows], "s--",
             label=f"γ, empirical model ({config.n_samples:,} samples)")
    ax2.plot(d, [r["normalized_rate_ideal_bits_per_token"] for r in rows], "o-", label="(H× − log2 M)/d, ideal")
    ax2.plot(d, [r["normalized_rate_model_bits_per_token"] for r in rows], "s--", label="(H× − log2 M)/d, empirical")
    ax2.axhline(0, color="gray", lw=0.5)
    ax2.set_xlabel("pruning depth d")
    ax2.set_ylabel("bits per token")
    ax2.set_title("compression rate and normalized rate (Def. 4.1)")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Pareto token tree: depth {config.depth}, V = {config.branching}, α = {config.alpha:g}, "
                 f"seed {config.seed}", fontsize=10)
    return save_figure(fig, path, dpi=120)


def _claims(rows: list[dict], checks: dict, config: DemoConfig) -> list:
    """The demo's exact checks as claims. All are tier ``verification`` (the core computes what the
    definitions say) with :func:`~tokentree.harness.exact_verdict` (deterministic: no sampling error)."""
    from .harness import Claim, exact_verdict

    worst = min(r["huffman_bits_per_block"] - r["entropy_bits"] for r in rows)
    top = max(r["huffman_bits_per_block"] - r["entropy_bits"] for r in rows)
    last = rows[-1]
    tol, btol = config.tolerance, config.block_tolerance
    n_blocks = config.length / last["depth"]
    block_ok = (n_blocks * last["entropy_bits"] - btol <= last["huffman_code_length_bits"]
                < math.ceil(n_blocks) * (last["entropy_bits"] + 1))
    return [
        Claim(id="demo.huffman_bounds", tier="verification",
              statement="H <= E[L_Huffman] < H + 1 at every pruning depth",
              predicted="0 <= E[L] - H < 1", measured=[worst, top], verdict=exact_verdict(checks["huffman_bounds"]),
              rule="holds iff H <= E[L_Huffman] < H + 1 at every depth 1..D (ideal_code_length.within_bounds)",
              source="paper Def. 3.3(b) / Thm 3.4 (digest §1.2)", details={"depths": len(rows)}),
        Claim(id="demo.kraft", tier="verification",
              statement="Huffman code lengths meet Kraft's inequality with equality",
              predicted=1.0, measured=min(r["kraft_sum"] for r in rows), verdict=exact_verdict(checks["kraft"]),
              rule="holds iff the Kraft sum is exactly 1.0 at every depth", source="Huffman optimality"),
        Claim(id="demo.prune_mass", tier="verification",
              statement="pruning conserves total mass (lumping convention)",
              predicted=0.0, measured=checks["max_mass_error"], verdict=exact_verdict(checks["mass_conserved"]),
              rule=f"holds iff max |total mass - 1| <= {tol:g} (config tolerance) over depths 1..D",
              source="docs/architecture.md conventions", details={"tolerance": tol}),
        Claim(id="demo.thm34_block_code", tier="verification",
              statement=f"for |x| = {config.length} at d = {last['depth']}: (|x|/d)·H <= exact Huffman block "
                        "length < ceil(|x|/d)·(H + 1); the paper writes ceil(|x|/d)·ceil(H)",
              predicted=last["paper_code_length_bits"], measured=last["huffman_code_length_bits"],
              verdict=exact_verdict(block_ok),
              rule=f"holds iff (|x|/d)·H - {btol:g} <= exact block length < ceil(|x|/d)·(H + 1) "
                   "(config block_tolerance)",
              source="paper Thm 3.4 [C]; bounds digest §1.2 [R]", details={"tolerance": btol}),
        Claim(id="demo.normalized_rate_nonpositive", tier="verification",
              statement="for the ideal model the normalized rate H - log2 M is <= 0 at every depth (0 iff uniform)",
              predicted="<= 0", measured=max(r["normalized_rate_ideal_bits_per_token"] for r in rows),
              verdict=exact_verdict(all(r["normalized_rate_ideal_bits_per_token"] <= tol for r in rows)),
              rule=f"holds iff the ideal model's normalized rate is <= {tol:g} (config tolerance) at every depth",
              source="digest R2 [R]", details={"tolerance": tol}),
    ]


def main(args: argparse.Namespace) -> int:
    """Run the demo; a bad option value raises :class:`~tokentree.errors.ConfigError` (exit 2 in the CLI)."""
    from .harness import config_to_dict, utc_now, write_csv, write_summary

    started = utc_now()
    t0 = time.perf_counter()
    config = DemoConfig(depth=args.depth, alpha=args.alpha, branching=args.branching, seed=args.seed,
                        length=args.length, n_samples=args.n_samples, smoothing=args.smoothing)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, checks = run(config)
    print(f"Pareto token tree: depth {config.depth}, V = {config.branching}, alpha = {config.alpha:g}, "
          f"seed {config.seed}; |x| = {config.length}; bits per block (H, E[L]) and per token (gamma)")
    print(format_table(rows))
    write_csv(out / "demo_table.csv", [{k: r[k] for k in COLUMNS} for r in rows])
    plot(rows, config, out / "fig_demo.png")
    claims = _claims(rows, checks, config)
    write_summary(out, config=config_to_dict(config), claims=claims, started_at=started, t0=t0, kind="demo",
                  figures=["fig_demo.png"], tables={"demo": "demo_table.csv"})
    for c in claims:
        print(f"[{c.verdict}] {c.statement}")
    print(f"wrote {out / 'summary.json'}, {out / 'demo_table.csv'}, {out / 'fig_demo.png'}")
    return 1 if any(c.verdict == "fails" for c in claims) else 0
