"""The scaling protocol's statistics and claims: 17a (model size), 17b (pre-training volume) and the check
that the volume axis is one run's checkpoints.

Per (setting, seed) the statistic is the paper's: the negatives needed for the behaviour score to come back
to the pre-trained level, averaged over the positive volumes. 17a/17b take per seed the least-squares slope
of log10(negatives) on log10(parameters or samples seen) and judge the Student-t CI of its mean over seeds
against 0 (:func:`tokentree.harness.sign_verdict`; a seed that never came back within the grid leaves the
claim inconclusive, since its slope is unknown, not small). Their ``details`` carry the minimum detectable
effect and, for a slope against the paper, the two halves of "rebound speed" (the initial margin drop per
negative sample and the aligned margin, the distance to fall). Both are claims of the paper's experiments
(tier ``paper``), not consequences of Thm 4.2: the theorem says nothing about model size, and the ideal
mixture's margin change after t negatives does not depend on the pre-training volume once k ≫ 1.
"""

from __future__ import annotations

import math

import numpy as np

from tokentree.harness import Claim, exact_verdict, finite_or_none, ls_slope, mean_ci, sign_verdict

from . import rebound
from ._common import censored_columns, ci_min_detectable_effect

__all__ = ["setting_statistics", "axis_claim", "one_run_claim"]


def setting_statistics(record: dict, cfg: rebound.Config) -> dict:
    """One (setting, seed): negatives to the pre-trained level (mean over positives), initial margin drop
    rate, aligned margin, how far the score moved at all, and the checkpoint it started from."""
    st = rebound.seed_statistics(record, cfg, "volume")
    rows = record["variants"]["volume"]
    negs = [p["negatives"] for p in next(iter(rows.values()))["points"]]
    drop, aligned, moved = [], [], []
    for row in rows.values():
        m = [p["margin"] for p in row["points"]]
        drop.append((m[0] - m[1]) / (negs[1] - negs[0]))
        aligned.append(m[0] - record["pretrained"]["margin"])
        moved.append(row["points"][0]["score"] - row["points"][-1]["score"])
    cross = list(st["crossing_score"].values())
    ck = record.get("checkpoint", {})
    return {"crossing": float(np.mean(cross)) if all(c is not None for c in cross) else None,
            "crossing_lower_bound": max(negs), "initial_margin_drop_rate": float(np.mean(drop)),
            "aligned_margin": float(np.mean(aligned)), "score_moved": float(np.mean(moved)),
            "n_parameters": record["n_parameters"], "pretrained_score": record["pretrained"]["score"],
            "pretrained_margin": record["pretrained"]["margin"],
            "pretrained_gamma_p_bits": record["pretrained"]["gamma_p_bits"], "step": ck.get("step"),
            "samples_seen": ck.get("samples_seen"), "learning_rate": ck.get("learning_rate"),
            "schedule_id": ck.get("schedule_id")}


def _trend(c) -> str:
    return "unmeasured" if c is None else "grows" if c[0] > 0 else "falls" if c[1] < 0 else "does not change measurably"


def axis_claim(cid: str, axis: str, xs: list[float], labels: list[str], per_seed: list[list[dict]], *,
               level: float, max_negatives: int, paper_scale: float, extra: dict | None = None) -> tuple[Claim, dict]:
    """17a/17b: the slope of log10(crossing) on log10(x) per seed, its CI over seeds, and the controls."""
    logx = [math.log10(x) for x in xs]
    slopes, drop_slopes, height_slopes, missing = [], [], [], 0
    for stats in per_seed:                                     # one list of settings per seed
        cross = [s["crossing"] for s in stats]
        if any(c is None or c <= 0 for c in cross):
            missing += 1
        else:
            slopes.append(ls_slope(logx, [math.log10(c) for c in cross]))
        drop_slopes.append(ls_slope(logx, [s["initial_margin_drop_rate"] for s in stats]))
        height_slopes.append(ls_slope(logx, [s["aligned_margin"] for s in stats]))
    m, ci = mean_ci(slopes, level)
    verdict = "inconclusive" if missing else sign_verdict(ci, -1)
    dm, dci = mean_ci(drop_slopes, level)
    hm, hci = mean_ci(height_slopes, level)
    controls = {"initial_margin_drop_rate": {"mean": dm, "ci": dci, "predicted": "> 0 (faster initial drop)"},
                "aligned_margin": {"mean": hm, "ci": hci, "predicted": "a higher start delays the crossing"}}
    if verdict == "holds":
        why = ""
    elif missing:
        why = f"the score did not reach the pre-trained level within {max_negatives} negatives in {missing} seed(s)"
    else:
        head = (f"negatives-to-level grows with {axis}" if verdict == "fails"
                else f"the trend of negatives-to-level with {axis} is undecided (the CI includes 0)")
        why = (f"{head}; per decade of {axis} the initial margin drop per negative sample {_trend(dci)} "
               f"(the paper reads 'faster initial drop' into rebound) and the aligned margin, the distance to fall, "
               f"{_trend(hci)}")
    bands = censored_columns([[s["crossing"] for s in stats] for stats in per_seed], level)
    paper = ("0.5B ≈ 750 > 4B ≈ 450 > 7B ≈ 350 (Fig. 5)" if axis == "model size"
             else "2T > 2000 > 2.5T ≈ 1000 > 3T ≈ 550 (Fig. 6, checkpoints of one TinyLlama run); absent at 0.1T")
    claim = Claim(
        id=f"scaling.{cid}", tier="paper",
        statement=f"The negatives needed to bring the behaviour score back to the pre-trained level decrease with {axis} "
                  f"({', '.join(labels)}).",
        predicted=f"slope of log10(negatives) on log10({axis}) < 0; paper: {paper}",
        measured=finite_or_none(m), ci=ci, verdict=verdict,
        rule="CI of the mean slope over seeds below 0 (inconclusive if a seed never reached the level)",
        source="paper §5.3 / digest §5.3 item 17 (an experimental claim of the paper, not a consequence of Thm 4.2)",
        details={"n_seeds": len(per_seed), "ci_level": level, "x": [float(x) for x in xs], "labels": labels,
                 "per_seed_slope": slopes, "seeds_not_reaching_level": missing,
                 # the slope's standard error is its t-CI's half-width over t_{n-1}; 80 % power
                 "min_detectable_effect": ci_min_detectable_effect(ci, len(slopes), level),
                 "negatives_to_level": finite_or_none(bands),
                 "negatives_to_level_paper_units": [None if v is None else v / paper_scale for v in bands["mean"]],
                 "score_moved": [float(np.mean([stats[j]["score_moved"] for stats in per_seed])) for j in range(len(xs))],
                 # what size or volume did to the pre-trained model itself: its margin and its held-out fit
                 **{key: [float(np.mean([stats[j][key] for stats in per_seed])) for j in range(len(xs))]
                    for key in ("pretrained_margin", "pretrained_gamma_p_bits")},
                 "controls": finite_or_none(controls), "explanation": why, **(extra or {})})
    return claim, bands


def one_run_claim(runs: list[dict], steps: list[int], warmup_steps: int, expected_lr: list[float]) -> Claim:
    """Verification: the volume axis is one run per seed. Every checkpoint of a seed's run carries the
    same schedule id (the same across seeds too), its steps increase and lie past warm-up, and the
    learning rate it recorded is the one schedule's value at that step (``expected_lr``, from the
    horizon's schedule: a separate run stopped early would have decayed sooner)."""
    problems = []
    ids = {c["schedule_id"] for r in runs for c in r["checkpoints"].values()}
    if len(ids) != 1:
        problems.append(f"{len(ids)} schedule ids")
    for i, r in enumerate(runs):
        got = [r["checkpoints"][str(s)] for s in steps]
        if [c["step"] for c in got] != sorted(set(steps)):
            problems.append(f"seed {i}: steps not increasing")
        if any(c["step"] <= warmup_steps for c in got):
            problems.append(f"seed {i}: a checkpoint inside warm-up")
        if any(not math.isclose(c["learning_rate"], lr, rel_tol=1e-9, abs_tol=1e-15) for c, lr in zip(got, expected_lr)):
            problems.append(f"seed {i}: learning rates off the one schedule")
        if any(r["loss_trace"][c["step"] - 1] != c["loss_nats"] for c in got):
            problems.append(f"seed {i}: a checkpoint's loss is not its run's loss at that step")
    return Claim(
        id="scaling.one_run_checkpoints", tier="verification",
        statement="The pre-training volumes are checkpoints of one run per seed: one optimizer and learning-rate "
                  "schedule, increasing steps, all past warm-up.",
        predicted="one schedule id; steps increasing and > warm-up; recorded LR = the schedule's LR at the step",
        measured=sorted(ids), ci=None, verdict=exact_verdict(not problems),
        rule="exact: every check passes", source="issue 14 item 3 (the paper's Fig. 6 reads one TinyLlama run)",
        details={"steps": steps, "warmup_steps": warmup_steps, "expected_learning_rate": expected_lr,
                 "recorded_learning_rate": [[r["checkpoints"][str(s)]["learning_rate"] for s in steps] for r in runs],
                 "problems": problems})
