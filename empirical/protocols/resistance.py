"""Resistance (paper §5.1, Table 1; Appendix B.1's KL-change variant) on an LM world.

Protocol, per seed (digest §4.1):

1. pre-train a small LM θ0 on D_p, a mixture of every component (``data.n_pretrain`` each);
2. run **one** alignment epoch on ``data.n_align`` sequences of ``aligned_component``, cut into
   ``data.n_slices`` equal slices with one optimizer kept across them; the model after slice k is θ_k;
3. D_k = ``data.n_samples`` responses of θ_k to held-out prompts (the prompt is BOS: each response is
   a whole sequence, marker included), sampled at temperature 1;
4. for every pair k < l: **forward** alignment (Path A) trains θ_k on D_l, **inverse** alignment
   (Path B) trains θ_l on D_k, each for ``finetune_epochs`` epochs with a fresh AdamW. The paper's metric
   is the mean training loss of each path; resistance means inverse < forward.

Beside the raw loss (bits/token) we report the loss minus the target data's own entropy H(D), the
generator's mean code length on its own samples (PROTOTYPE.md P8: the raw loss mostly measures H(D)),
and the KL-change variant: ΔKL = KL(start ‖ end) per token on the target data, how far each path moved
the model (the digest does not say which KL the paper's Appendix B.1 used; ``details`` also keep the
drop of KL(generator ‖ model), the other reading). Each comparison becomes a claim of digest §5.3
item 14 with a Student-t CI over seeds; a reversal names the control that explains it.

Controls (:mod:`._resistance_control`, REVIEW-empirical §3 R4): the step-0 asymmetry KL(θ_l‖θ_k) −
KL(θ_k‖θ_l) of the pair as its own claim, and, with ``control.enabled``, the entropy-direction arm
(peaked pre-training, alignment toward the uniform mix, so the later slices have *higher* entropy) run on
the same seeds as the main arm, whose claim separates "return to the earlier model" from "sharpening is
slower than flattening". Units (arm × seed) are resumable parts and may run in ``workers`` processes.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.harness import (
    Claim,
    check_at_least,
    check_range,
    finite_or_none,
    mean_ci,
    mean_ci_columns,
    run_units,
    seed_list,
    sign_verdict,
    write_csv,
)

from ..config import TrainConfig
from ._common import (
    ClaimsBase,
    PretrainedWorldData,
    PretrainedWorldExperiment,
    RunFolder,
    ci_min_detectable_effect,
    setup_torch,
)
from ._resistance_control import (
    ResistanceControl,
    arm_table,
    control_claims,
    control_corpora,
    entropy_gaps,
    pair_gaps,
    seed_mean_gaps,
    step0_claim,
)

__all__ = ["ResistanceData", "ResistanceClaims", "Config", "run", "run_seed", "sample_sequences", "resistance_claims",
           "PATH_METRICS"]

NATS_PER_BIT = math.log(2.0)
# what each path records -> (claim suffix, statement fragment, unit)
PATH_METRICS = {
    "loss_bits": ("raw", "mean training loss", "bits/token"),
    "corrected_bits": ("entropy_corrected", "mean training loss minus the target data's own entropy", "bits/token"),
    "kl_moved_nats": ("kl_change", "KL change KL(start ‖ end) on the target data (Appendix B.1 variant)",
                      "nats/token"),
}


@dataclass(frozen=True, kw_only=True)
class ResistanceData(PretrainedWorldData):
    """Volumes of the protocol, in sequences of the world; ``n_pretrain`` and ``aligned_component``
    as in :class:`PretrainedWorldData`."""

    n_align: int = 960
    n_slices: int = 3
    n_samples: int = 400

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("n_slices", self.n_slices, 2 <= self.n_slices <= 10, "an int in [2, 10]")
        check_range("n_align", self.n_align, self.n_align >= self.n_slices,
                    f"an int >= n_slices ({self.n_slices})")
        check_at_least(self, n_samples=1)


@dataclass(frozen=True, kw_only=True)
class ResistanceClaims(ClaimsBase):
    """The ``[claims]`` table of the resistance protocol. The paper's claims are signs (forward − inverse
    > 0, judged on the CI over seeds of the per-seed mean gap). ``step0_band_bits``: the equivalence band
    of the step-0 asymmetry (bits/token; default a third of the entropy-corrected gap of +0.0098 that
    REVIEW R4 measured, so a step-0 asymmetry inside it explains at most a third of such a gap).
    ``control_margin_bits``: the control arm's direction claim holds above +margin and fails (a flip)
    below −margin (default a tenth of that gap: smaller effects are named neither)."""

    step0_band_bits: float = 0.003
    control_margin_bits: float = 0.001

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("step0_band_bits", "control_margin_bits"):
            v = getattr(self, name)
            check_range(name, v, math.isfinite(v) and v >= 0, "a finite float >= 0 (bits/token)")


def _stage_default() -> TrainConfig:
    return TrainConfig(learning_rate=1e-3, batch_size=16, warmup_steps=0, decay="constant", max_steps=0)


@dataclass(frozen=True, kw_only=True)
class Config(PretrainedWorldExperiment):
    """The resistance protocol. ``align.max_steps`` and ``finetune.max_steps`` are ignored: step counts
    follow from the volumes (one epoch over the slices; ``finetune_epochs`` epochs over D_k). ``[control]``
    adds the entropy-direction arm (:class:`~._resistance_control.ResistanceControl`); the arm × seed units
    run in ``workers`` processes (each pins ``pretrain.threads``)."""

    protocol: str = "resistance"
    data: ResistanceData = field(default_factory=ResistanceData)
    align: TrainConfig = field(default_factory=_stage_default)
    finetune: TrainConfig = field(default_factory=_stage_default)
    finetune_epochs: int = 1
    sample_batch_size: int = 200
    workers: int = 1
    control: ResistanceControl = field(default_factory=ResistanceControl)
    claims: ResistanceClaims = field(default_factory=ResistanceClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, finetune_epochs=1, sample_batch_size=1)
        check_range("workers", self.workers, 1 <= self.workers <= 64, "an int in [1, 64] (parallel processes)")
        check_range("data.aligned_component", self.data.aligned_component,
                    self.data.aligned_component < self.world.n_components,
                    f"an int < world.n_components ({self.world.n_components})")
        if self.control.enabled:
            self.control.validate(self.world.n_components, self.data.n_align, self.data.n_slices)

    @property
    def arms(self) -> tuple[str, ...]:
        return ("main", "control") if self.control.enabled else ("main",)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return list(itertools.combinations(range(1, self.data.n_slices + 1), 2))


def sample_sequences(model, world, n: int, *, seed: int, batch_size: int = 200) -> tuple[list[np.ndarray], float]:
    """``n`` responses of ``model`` to the prompt BOS, sampled at temperature 1.

    PAD and BOS are never sampled (masked; a trained model gives them ~0 mass). A response that has not
    ended after the world's longest sequence is closed with EOS. Returns (sequences, fraction closed).
    """
    import torch

    from ..data import BOS, EOS, PAD

    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be an int >= 1; got {n!r}.")
    gen = torch.Generator().manual_seed(int(seed))
    device = next(model.parameters()).device
    max_len = world.max_sequence_tokens
    model.eval()
    out, closed = [], 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            ids = torch.full((m, 1), BOS, dtype=torch.long, device=device)
            done = torch.zeros(m, dtype=torch.bool, device=device)
            for _ in range(max_len - 1):
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1].float()  # (m, vocab)
                logits[:, [PAD, BOS]] = -torch.inf
                nxt = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=gen).squeeze(1).to(device)
                nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
                ids = torch.cat([ids, nxt[:, None]], dim=1)
                done |= nxt == EOS
                if bool(done.all()):
                    break
            for row in ids.cpu().numpy():
                end = np.flatnonzero(row == EOS)
                if end.size:
                    out.append(row[:end[0] + 1].copy())
                else:
                    closed += 1
                    out.append(np.concatenate([row[:max_len - 1], [EOS]]).astype(np.int64))
    return out, closed / n


def _mean_bits(model, seqs, batch_size: int) -> float:
    from ..metrics import compression_rate, sequence_scores

    return compression_rate(sequence_scores(model, seqs, batch_size=batch_size))["bits_per_token"]


def run_seed(cfg: Config, seed: int, *, arm: str = "main", progress: bool = False) -> dict:
    """Pre-train, slice one alignment epoch, sample D_k, run every forward and inverse path for one seed.

    ``arm = "control"`` takes D_p and the alignment stream from ``cfg.control`` (the entropy-direction
    arm); every other seed (init, batch order, sampling) is the main arm's, so the arms pair by seed."""
    from ..data import batch_stream, build_world, iterate_batches
    from ..metrics import kl_to_reference
    from ..models import build_model
    from ..train import train

    t0 = time.perf_counter()
    world = build_world(cfg.world)
    d = cfg.data
    ss = np.random.SeedSequence(seed).spawn(4)
    if arm == "control":
        pre_corpus, align_corpus = control_corpora(world, cfg.control, d.n_align, ss)
    elif arm == "main":
        pre_corpus = world.sample_mixture([d.n_pretrain] * world.n_components, ss[0])
        align_corpus = world.sample(d.aligned_component, d.n_align, ss[1])
    else:
        raise ValueError(f"arm must be 'main' or 'control'; got {arm!r}.")
    init_seed = int(ss[2].generate_state(1)[0])
    sample_seed = int(ss[3].generate_state(1)[0])
    bs = cfg.eval.batch_size

    model = build_model(cfg.model, world.vocab_size, max_positions=world.max_sequence_tokens, seed=init_seed)
    train(model, batch_stream(pre_corpus, cfg.pretrain.batch_size, seed=init_seed), cfg.pretrain,
          progress=progress, desc="pre-train")
    # one epoch in n_slices equal parts, one optimizer across them: theta_1 .. theta_n
    per_step = cfg.align.batch_size * cfg.align.grad_accum
    align_cfg = cfg.align
    if arm == "control" and cfg.control.align_learning_rate > 0:
        align_cfg = dataclasses.replace(cfg.align, learning_rate=cfg.control.align_learning_rate)
    bounds = np.linspace(0, d.n_align, d.n_slices + 1).round().astype(int)
    slices, optimizer, align_steps = {}, None, []
    for k in range(1, d.n_slices + 1):
        part = align_corpus.take(int(bounds[k])).sequences[int(bounds[k - 1]):]
        steps = max(1, math.ceil(len(part) / per_step))
        log = train(model, iterate_batches(part, cfg.align.batch_size), dataclasses.replace(align_cfg, max_steps=steps),
                    optimizer=optimizer, progress=progress, desc=f"align slice {k}")
        optimizer = log.optimizer
        align_steps.append(steps)
        slices[k] = copy.deepcopy(model).eval()
    data, entropy, closed = {}, {}, {}
    for k, theta in slices.items():
        data[k], closed[k] = sample_sequences(theta, world, d.n_samples, seed=sample_seed + k,
                                              batch_size=cfg.sample_batch_size)
        entropy[k] = _mean_bits(theta, data[k], bs)        # H(D_k): the generator's own code length
    steps = max(1, math.ceil(cfg.finetune_epochs * d.n_samples / (cfg.finetune.batch_size * cfg.finetune.grad_accum)))
    ft_cfg = dataclasses.replace(cfg.finetune, max_steps=steps)
    paths = []
    for (k, l), direction in itertools.product(cfg.pairs, ("forward", "inverse")):
        src, tgt = (k, l) if direction == "forward" else (l, k)
        start = slices[src]
        model = copy.deepcopy(start).train()
        log = train(model, batch_stream(data[tgt], cfg.finetune.batch_size, seed=init_seed + 17 * src + tgt), ft_cfg,
                    progress=progress, desc=f"{direction} θ{src}→D{tgt}")
        loss_bits = float(np.mean(log.loss_nats)) / NATS_PER_BIT
        kl_start = kl_to_reference(start, slices[tgt], data[tgt], batch_size=bs)["nats_per_token"]
        kl_end = kl_to_reference(model, slices[tgt], data[tgt], batch_size=bs)["nats_per_token"]
        paths.append({
            "pair": f"{k}-{l}", "direction": direction, "source": src, "target": tgt, "steps": len(log.steps),
            "loss_bits": loss_bits, "final_loss_bits": log.final_loss_nats / NATS_PER_BIT,
            "target_entropy_bits": entropy[tgt], "corrected_bits": loss_bits - entropy[tgt],
            "kl_moved_nats": kl_to_reference(model, start, data[tgt], batch_size=bs)["nats_per_token"],
            "kl_to_generator_start_nats": kl_start, "kl_to_generator_end_nats": kl_end,
            "kl_to_generator_drop_nats": kl_start - kl_end,
        })
    from ..metrics import marker_logprobs

    marker = {k: marker_logprobs(theta, world).tolist() for k, theta in slices.items()}
    return {"seed": seed, "arm": arm, "align_steps": align_steps, "finetune_steps": steps, "entropy_bits": entropy,
            "closed_fraction": closed, "marker_logprobs": marker,
            "paths": paths, "wall_time_s": time.perf_counter() - t0}


def resistance_claims(records: list[dict], cfg: Config) -> tuple[list[Claim], dict]:
    """Claim 14 in three units (raw, entropy-corrected, KL change); returns (claims, per-pair bands)."""
    from .. import paper_values as pv

    pairs = [f"{k}-{l}" for k, l in cfg.pairs]
    level = cfg.claims.ci_level
    n = len(records)
    bands, verdicts = {}, {}
    claims = []
    paper_rows = pv.resistance_gaps()
    for metric, (suffix, what, unit) in PATH_METRICS.items():
        per_seed = [pair_gaps(r, metric) for r in records]
        cells = [g[p] for g in per_seed for p in pairs]
        seed_means = [float(np.mean([g[p] for p in pairs])) for g in per_seed]
        m, ci = mean_ci(seed_means, level)
        verdict = sign_verdict(ci, +1)
        verdicts[suffix] = verdict
        bands[suffix] = mean_ci_columns([[g[p] for p in pairs] for g in per_seed], level)
        per_pair = {}
        for p in pairs:
            pm, pci = mean_ci([g[p] for g in per_seed], level)
            per_pair[p] = {"mean": pm, "ci": pci, "inverse_below_forward": sum(g[p] > 0 for g in per_seed)}
        paper = ("27/27 cells, gaps 0.0002–0.0961 (Table 1)" if metric != "kl_moved_nats"
                 else "7/7 pairs, e.g. 0.4568 vs 0.2796 (Table 2)")
        claims.append(Claim(
            id=f"resistance.{suffix}", tier="paper",
            statement=f"Inverse alignment (θ_l trained on D_k) is easier than forward alignment (θ_k on D_l): "
                      f"forward − inverse {what} > 0, averaged over the pairs of {cfg.data.n_slices} slices.",
            predicted=f"> 0 in every pair ({paper})", measured=finite_or_none(m), ci=ci, verdict=verdict,
            rule="CI over seeds of the per-seed mean gap above 0",
            source="paper §5.1 Table 1 / digest §5.3 item 14" if metric != "kl_moved_nats"
            else "paper Appendix B.1 Table 2 / digest §5.3 item 14",
            details={"unit": unit, "n_seeds": n, "ci_level": level, "per_pair": per_pair,
                     "cells_in_paper_direction": f"{sum(c > 0 for c in cells)}/{len(cells)}",
                     "per_seed_mean_gap": seed_means,
                     # the mean's standard error is its t-CI's half-width over t_{n-1}; 80 % power
                     "min_detectable_effect": ci_min_detectable_effect(ci, n, level),
                     "paper_gap_range": [min(r['gap'] for r in paper_rows), max(r['gap'] for r in paper_rows)]}))
    # name the control that explains a reversal (P8: the raw loss tracks the target entropy)
    h_per_seed = [entropy_gaps(r, cfg.pairs) for r in records]
    h_gap = seed_mean_gaps(h_per_seed, pairs)
    hm, hci = mean_ci(h_gap, level)
    raw = claims[0]
    # P8: how much of the raw per-cell gap is the target-entropy difference H(D_l) - H(D_k)?
    raw_cells = [pair_gaps(r, "loss_bits")[p] for r in records for p in pairs]
    h_cells = [h[p] for h in h_per_seed for p in pairs]
    r2 = float(np.corrcoef(raw_cells, h_cells)[0, 1] ** 2) if len(raw_cells) > 2 and np.std(h_cells) > 0 else None
    state = {"holds": "in the paper's direction", "fails": "against the paper",
             "inconclusive": "undecided (the CI includes 0)"}
    if verdicts["raw"] == "holds":
        why = ""
    elif verdicts["entropy_corrected"] == "holds":
        why = (f"raw loss {state[verdicts['raw']]}; in the paper's direction after the entropy correction: the raw "
               f"gap carries H(D_l) − H(D_k), which explains R² = {r2 if r2 is None else round(r2, 3)} of its "
               f"variance across cells")
    else:
        why = (f"raw loss {state[verdicts['raw']]}, and {state[verdicts['entropy_corrected']]} after the entropy "
               f"correction; the raw gap carries H(D_l) − H(D_k), which explains R² = "
               f"{r2 if r2 is None else round(r2, 3)} of its variance across cells")
    raw.details["explanation"] = why
    raw.details["controls"] = {"entropy_correction": {"verdict": verdicts["entropy_corrected"],
                                                      "mean": claims[1].measured, "ci": claims[1].ci},
                               "target_entropy_gap_bits": {"mean": hm, "ci": hci, "per_seed": h_gap},
                               "raw_gap_variance_explained_by_entropy_gap": r2}
    return claims, {"pairs": pairs, **bands}



def _unit(config: Config, seed: int, arm: str, progress: bool) -> dict:
    """One arm of one seed (module level, so that worker processes can run it)."""
    setup_torch(config.pretrain.threads)
    return finite_or_none(run_seed(config, seed, arm=arm, progress=progress))


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Run every arm of every seed (one resumable part each: ``seed<i>``, ``control_seed<i>``), then write
    claims, the CSV tables and the figures."""
    from .. import paper_plots
    from ._resistance_control import plot_control

    # threads once for the whole route: train() leaves the thread count alone
    folder = RunFolder(config, out_dir, threads=config.pretrain.threads)
    out_dir = folder.path
    seeds = seed_list(config.seed, config.n_seeds)
    key = {"main": "seed{}", "control": "control_seed{}"}
    units = [(key[arm].format(i), (config, s, arm, progress and config.workers == 1))
             for i, s in enumerate(seeds) for arm in config.arms]
    done = run_units(_unit, units, folder.store, workers=config.workers)
    records = {arm: [done[key[arm].format(i)] for i in range(len(seeds))] for arm in config.arms}
    claims, bands = resistance_claims(records["main"], config)
    claims.append(step0_claim(records["main"], config, arm="main"))
    figures, tables = ["fig_resistance.png"], {"paths": "resistance_paths.csv"}
    extra = {"bands": finite_or_none(bands),
             "seed_wall_time_s": {arm: [r["wall_time_s"] for r in recs] for arm, recs in records.items()}}
    if config.control.enabled:
        more, arm_bands = control_claims(records["main"], records["control"], config)
        claims += more
        direction = more[1]
        claims[0].details["controls"]["entropy_direction_arm"] = {
            "claim": direction.id, "verdict": direction.verdict, "mean": direction.measured, "ci": direction.ci,
            "reading": direction.details["reading"]}
        write_csv(out_dir / "resistance_arms.csv", arm_table(arm_bands))
        plot_control(arm_bands, out_dir / "fig_resistance_control.png", step0_band=config.claims.step0_band_bits)
        figures.append("fig_resistance_control.png")
        tables["arms"] = "resistance_arms.csv"
        extra["control_bands"] = finite_or_none(arm_bands)
    rows = [{"arm": arm, "seed_index": i, **p} for arm, recs in records.items() for i, r in enumerate(recs)
            for p in r["paths"]]
    write_csv(out_dir / "resistance_paths.csv", rows)
    paper_plots.plot_resistance({"pairs": bands["pairs"], "raw": bands["raw"], "corrected": bands["entropy_corrected"],
                                 "kl": bands["kl_change"]}, out_dir / "fig_resistance.png")
    return folder.summary(claims, figures=figures, tables=tables, extra=extra)
