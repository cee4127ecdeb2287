"""Pre-train the from-scratch LM (:mod:`empirical.scratch_lm`) and report its held-out bits/byte per checkpoint.

Protocol: one run of ``pretrain.max_steps`` steps (one optimizer, one schedule) on the IMDb + Rotten
Tomatoes text left after the real-model protocols' reserve, saved at every ``checkpoints.steps``
step, each checkpoint read on the held-out sets (drawn from the same pool, never trained on). The
checkpoints live in the cache (:func:`empirical.scratch_lm.ensure_pretrained`), so a second run of
the same config, or a real-model config naming ``model.name = "scratch:<config>[@<step>]"``, loads
them; this run folder holds the report.

Claims (thresholds in ``[claims]``; every interval a percentile bootstrap over held-out texts):

* ``heldout_disjoint`` (verification, exact): no pre-training text is a reserved text (the
  real-model protocols' prompts, pools, D_a / D_t, classifier test reviews, near-proxy sentences)
  or a bits/byte held-out text;
* ``one_schedule`` (verification, exact): every checkpoint carries the run's id and the learning
  rate of the one schedule at its step;
* ``bits_per_byte_falls`` (sanity): held-out bits/byte at the last checkpoint minus the first,
  paired per text, below 0;
* ``reaches_bits_per_byte`` (sanity): the last checkpoint's held-out bits/byte (total nats / ln 2 /
  total UTF-8 bytes, both sets pooled) below ``claims.max_bits_per_byte``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import Claim, check_range, exact_verdict, paired_bootstrap_ci, sign_verdict, write_csv

from ..config import ModelConfig, TrainConfig
from ..scratch_lm import CheckpointConfig, ScratchDataConfig, TokenizerConfig, checkpoint_steps
from ._common import ClaimsBase, ExperimentBase, RunFolder
from ._real_readouts import bootstrap_min_detectable_effect

__all__ = ["ScratchClaims", "Config", "run", "bits_per_byte_ci", "claims_from_record"]

LN2 = math.log(2.0)


@dataclass(frozen=True, kw_only=True)
class ScratchClaims(ClaimsBase):
    """``max_bits_per_byte``: the held-out level the last checkpoint must be below; ``n_boot``: resamples."""

    max_bits_per_byte: float = 2.5
    n_boot: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("max_bits_per_byte", self.max_bits_per_byte, self.max_bits_per_byte > 0, "a float > 0")
        check_range("n_boot", self.n_boot, self.n_boot >= 100, "an int >= 100")


@dataclass(frozen=True, kw_only=True)
class Config(ExperimentBase):
    protocol: str = "scratch_pretrain"
    n_seeds: int = 1
    model: ModelConfig = field(default_factory=lambda: ModelConfig(family="gpt2", size="micro", n_layer=4))
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: ScratchDataConfig = field(default_factory=ScratchDataConfig)
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=2e-3, batch_size=16,
                                                                      warmup_steps=50, max_steps=600,
                                                                      min_lr_ratio=0.1, checkpoint_every=50))
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    claims: ScratchClaims = field(default_factory=ScratchClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("n_seeds", self.n_seeds, self.n_seeds == 1, "1 (one pre-training run; its checkpoints are the "
                    "volume axis)")
        if self.model.pretrained is not None:
            raise ConfigError(f"model.pretrained must be absent (this protocol trains from scratch); got "
                              f"{self.model.pretrained!r}.")
        check_range("pretrain.max_steps", self.pretrain.max_steps, self.pretrain.max_steps >= 1, "an int >= 1")
        checkpoint_steps(self)


def bits_per_byte_ci(readouts: dict, level: float, n_boot: int, base: dict | None = None) -> tuple[float, list | None]:
    """Held-out bits/byte of one checkpoint (every set pooled), or its change from ``base``, with a
    bootstrap interval over texts (paired with ``base`` when given)."""
    keys = sorted(readouts)
    nats = np.concatenate([readouts[k]["nats"] for k in keys])
    nbytes = np.concatenate([readouts[k]["n_bytes"] for k in keys]).astype(np.float64)
    if base is None:
        return paired_bootstrap_ci(lambda n, b: n.sum() / LN2 / b.sum(), nats, nbytes, n_boot=n_boot, level=level)
    ref = np.concatenate([base[k]["nats"] for k in keys])
    return paired_bootstrap_ci(lambda n, r, b: (n.sum() - r.sum()) / LN2 / b.sum(), nats, ref, nbytes,
                               n_boot=n_boot, level=level)


def claims_from_record(config: Config, record: dict, overlaps: dict) -> list[Claim]:
    """The four claims of a run record (:func:`empirical.scratch_lm.pretrain`) and the overlap counts."""
    c, level = config.claims, config.claims.ci_level
    steps = [ck["step"] for ck in record["checkpoints"]]
    ro = record["heldout"]
    first, last = ro[str(steps[0])], ro[str(steps[-1])]
    n_over = sum(overlaps.values())
    claims = [Claim(id="scratch_pretrain.heldout_disjoint", tier="verification",
                    statement="No pre-training text is a text the real-model protocols hold out, or a bits/byte "
                              "held-out text", predicted=0, measured=n_over, verdict=exact_verdict(n_over == 0),
                    rule="exact: the count of shared texts is 0", source="issue 14 item 5",
                    details={**overlaps, "min_detectable_effect": 1})]
    bad = [ck["step"] for ck in record["checkpoints"]
           if ck["run"] != record["run"] or ck["lr"] is None
           or not math.isclose(ck["lr"], ck["expected_lr"], rel_tol=1e-9, abs_tol=1e-15)]
    claims.append(Claim(id="scratch_pretrain.one_schedule", tier="verification",
                        statement="Every checkpoint comes from the one run and its one learning-rate schedule",
                        predicted=0, measured=len(bad), verdict=exact_verdict(not bad),
                        rule="exact: every checkpoint's run id and learning rate equal the run's schedule at its step",
                        source="issue 14 item 3", details={"steps": steps, "mismatched_steps": bad,
                                                           "schedule": record["schedule"],
                                                           "min_detectable_effect": 1}))
    d, ci = bits_per_byte_ci(last, level, c.n_boot, base=first)
    claims.append(Claim(id="scratch_pretrain.bits_per_byte_falls", tier="sanity",
                        statement=f"Held-out bits/byte falls from step {steps[0]} to step {steps[-1]}",
                        predicted="< 0", measured=d, ci=ci, verdict=sign_verdict(ci, -1),
                        rule="CI (bootstrap over held-out texts, paired) below 0", source="pre-training",
                        details={"unit": "bits/byte", "min_detectable_effect": bootstrap_min_detectable_effect(ci, level)}))
    v, ci = bits_per_byte_ci(last, level, c.n_boot)
    claims.append(Claim(id="scratch_pretrain.reaches_bits_per_byte", tier="sanity",
                        statement=f"The last checkpoint's held-out bits/byte is below {c.max_bits_per_byte}",
                        predicted=f"< {c.max_bits_per_byte}", measured=v, ci=ci,
                        verdict=sign_verdict(ci, -1, threshold=c.max_bits_per_byte),
                        rule=f"CI (bootstrap over held-out texts) below claims.max_bits_per_byte = {c.max_bits_per_byte}",
                        source="pre-training", details={"unit": "bits/byte (total nats / ln 2 / total UTF-8 bytes)",
                                                        "min_detectable_effect": bootstrap_min_detectable_effect(ci, level)}))
    return claims


def _overlaps(texts) -> dict:
    train = set(texts.train)
    held = set().union(*map(set, texts.heldout.values()))
    return {"train_in_reserved": len(train & texts.reserved), "train_in_heldout": len(train & held),
            "heldout_in_reserved": len(held & texts.reserved)}


def _table(config: Config, record: dict) -> list[dict]:
    rows = []
    for ck in record["checkpoints"]:
        ro = record["heldout"][str(ck["step"])]
        v, ci = bits_per_byte_ci(ro, config.claims.ci_level, config.claims.n_boot)
        row = {"step": ck["step"], "tokens_seen": ck["tokens_seen"], "lr": ck["lr"],
               "train_loss_nats": ck["train_loss_nats"], "heldout_bits_per_byte": v,
               "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
               "wall_s": ck["wall_s"], "cpu_s": ck["cpu_s"]}
        for k, r in sorted(ro.items()):
            row[f"bits_per_byte_{k}"] = float(np.sum(r["nats"]) / LN2 / np.sum(r["n_bytes"]))
            row[f"nats_per_token_{k}"] = float(np.sum(r["nats"]) / np.sum(r["n_tokens"]))
        rows.append(row)
    return rows


def _figure(out_dir: Path, rows: list[dict]) -> str:
    from tokentree.harness.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x = [r["tokens_seen"] for r in rows]
    ax.errorbar(x, [r["heldout_bits_per_byte"] for r in rows],
                yerr=[[r["heldout_bits_per_byte"] - (r["ci_low"] or r["heldout_bits_per_byte"]) for r in rows],
                      [(r["ci_high"] or r["heldout_bits_per_byte"]) - r["heldout_bits_per_byte"] for r in rows]],
                marker="o", label="held-out (pooled)")
    for k in [k for k in rows[0] if k.startswith("bits_per_byte_")]:
        ax.plot(x, [r[k] for r in rows], ls="--", marker=".", label=k[len("bits_per_byte_"):])
    ax.set_xscale("log")
    ax.set_xlabel("pre-training tokens (checkpoints of one run)")
    ax.set_ylabel("bits / byte")
    ax.legend(fontsize=7)
    save_figure(fig, out_dir / "fig_bits_per_byte.png")
    return "fig_bits_per_byte.png"


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Pre-train (or load from the cache) and write ``summary.json``, ``checkpoints.csv`` and the figure."""
    from ..scratch_lm import ensure_pretrained, pretraining_texts
    from ..text_data import locate_imdb

    locate_imdb(config.data.csv_path or None)
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    out_dir = folder.path
    out_dir.mkdir(parents=True, exist_ok=True)
    cache, record = ensure_pretrained(config, progress=progress)
    overlaps = _overlaps(pretraining_texts(config.data, config.seed))
    rows = _table(config, record)
    write_csv(out_dir / "checkpoints.csv", rows)
    claims = claims_from_record(config, record, overlaps)
    extra = {"cache_folder": str(cache), "checkpoint_folders": {str(ck["step"]): str(cache / ck["folder"])
                                                               for ck in record["checkpoints"]},
             "n_parameters": record["n_parameters"], "texts": record["texts"],
             "tokens_per_byte": record["tokens_per_byte"], "checkpoints": rows,
             "pretraining": {k: record[k] for k in ("wall_s", "cpu_s", "device", "precision", "resumed_from")}}
    return folder.summary(claims, figures=[_figure(out_dir, rows)], tables={"checkpoints": "checkpoints.csv"},
                          extra=extra)
