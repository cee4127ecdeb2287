"""``elasticity run CONFIG`` and ``elasticity resolve CONFIG``: protocol discovery, resolution, output folders.

CONFIG is a TOML path or the name of a shipped config in ``empirical/configs/`` (``joint_cpu``).
Its top-level ``protocol = "NAME"`` selects the module ``empirical.protocols.NAME``, which defines a
frozen ``Config`` and ``run(config, out_dir, *, progress=True) -> dict``. There is no registry: a new
protocol is a new file.

Resolution (what ``resolve`` prints and ``run`` uses): every :class:`~empirical.config.TrainConfig`
in the tree gets ``device = "auto"`` replaced by ``"cuda:0"`` or ``"cpu"`` and ``precision = "auto"``
by ``"bf16"`` or ``"fp32"``; the per-replicate seeds derived from ``seed`` with
``np.random.SeedSequence(seed).spawn(n_seeds)`` are printed beside the config.

The default output folder is ``runs/<name>/<UTC time>-<config hash 8>/``. This module imports no
torch at import time (``elasticity --help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

from tokentree.errors import ConfigError
from tokentree.harness import config_from_dict, config_hash, config_to_dict, read_toml, utc_now

__all__ = ["CONFIG_DIR", "find_config", "shipped_configs", "available_protocols", "load_protocol", "load",
           "resolve", "resolved_dict", "default_out_dir", "run_config", "to_toml",
           "add_run_arguments", "run_main", "add_resolve_arguments", "resolve_main"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def available_protocols() -> list[str]:
    from . import protocols

    return sorted(m.name for m in pkgutil.iter_modules(protocols.__path__) if not m.name.startswith("_"))


def find_config(path_or_name: str | Path) -> Path:
    """A TOML path, or the name of a shipped config (with or without ``.toml``).

    Raises ConfigError naming the missing file, or, for a bare name, the nearest shipped config
    ("Did you mean ...") and the list of shipped configs.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".toml") else path.name
    shipped = CONFIG_DIR / f"{stem}.toml"
    is_name = str(path) == path.name
    if is_name and shipped.is_file():
        return shipped
    names = shipped_configs()
    if not is_name:  # a path: the file is simply not there
        raise ConfigError(f"CONFIG must be a TOML file or the name of a shipped config; got {str(path_or_name)!r} "
                          f"(no such file).")
    close = difflib.get_close_matches(stem, names, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"CONFIG must be a TOML file or the name of a shipped config; got {str(path_or_name)!r}."
                      f"{hint} Shipped configs: {', '.join(names) or 'none'}.")


def load_protocol(name: str) -> ModuleType:
    """Import ``empirical.protocols.NAME`` and check it has ``Config`` and ``run``."""
    if not isinstance(name, str) or not name or name.startswith("_") or not name.isidentifier():
        raise ConfigError(f"protocol must be the name of a module in empirical/protocols "
                          f"({', '.join(available_protocols())}); got {name!r}.")
    try:
        module = importlib.import_module(f"empirical.protocols.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"empirical.protocols.{name}":
            raise
        raise ConfigError(f"protocol must be the name of a module in empirical/protocols "
                          f"({', '.join(available_protocols())}); got {name!r}.") from None
    for attr in ("Config", "run"):
        if not hasattr(module, attr):
            raise ConfigError(f"protocol module empirical.protocols.{name} must define {attr!r}.")
    return module


def load(path_or_name: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[ModuleType, Any]:
    """(protocol module, its Config built from the TOML file and ``key=value`` overrides), unresolved."""
    path = find_config(path_or_name)
    data = read_toml(path, overrides)
    if "protocol" not in data:
        raise ConfigError(f"protocol must be set at the top level of {str(path)!r} "
                          f"(one of {', '.join(available_protocols())}); got nothing.")
    module = load_protocol(data["protocol"])
    fields = {f.name for f in dataclasses.fields(module.Config)}
    if "protocol" not in fields:
        data = {k: v for k, v in data.items() if k != "protocol"}
    return module, config_from_dict(module.Config, data)


def resolve(config: Any) -> Any:
    """Replace ``device``/``precision`` ``"auto"`` in every TrainConfig of the tree by what this machine runs.

    This is the one place a run's device and precision are decided: each distinct requested value
    is resolved once (one CUDA query per run), and the protocols receive the resolved config.
    """
    from .config import resolve_device, resolve_precision

    devices: dict[str, str] = {}
    precisions: dict[tuple[str, str], str] = {}

    def device_of(requested: str) -> str:
        if requested not in devices:
            devices[requested] = resolve_device(requested)
        return devices[requested]

    def precision_of(requested: str, device: str) -> str:
        if (requested, device) not in precisions:
            precisions[requested, device] = resolve_precision(requested, device)
        return precisions[requested, device]

    return _resolve_tree(config, device_of, precision_of, "")


def _resolve_tree(config: Any, device_of, precision_of, prefix: str) -> Any:
    from .config import TrainConfig

    if isinstance(config, TrainConfig):
        try:
            device = device_of(config.device)
        except ConfigError as exc:  # name the key: "train.device must be ..."
            raise ConfigError(f"{prefix}{exc}") from None
        return dataclasses.replace(config, device=device, precision=precision_of(config.precision, device))
    if not dataclasses.is_dataclass(config):
        return config
    changes = {f.name: _resolve_tree(getattr(config, f.name), device_of, precision_of, f"{prefix}{f.name}.")
               for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))}
    return dataclasses.replace(config, **changes) if changes else config


def resolved_dict(config: Any) -> dict:
    """The resolved config as a dict, plus the derived per-replicate seeds and the config hash."""
    from tokentree.harness import seed_list

    data = config_to_dict(config)
    derived: dict[str, Any] = {"config_hash": config_hash(data)}
    if isinstance(data.get("seed"), int):
        derived["seeds"] = seed_list(data["seed"], int(data.get("n_seeds", 1)))
    return {"config": data, "derived": derived}


def _run_name(config: Any) -> str:
    name = getattr(config, "name", "") or getattr(config, "protocol", "") or type(config).__module__.split(".")[-1]
    return str(name)


def default_out_dir(config: Any, root: str | Path = "runs") -> Path:
    """``ROOT/<name>/<UTC time, compact>-<config hash 8>``, e.g. ``runs/joint_cpu/20261201T191902Z-1a2b3c4d``."""
    stamp = utc_now().replace("-", "").replace(":", "")
    return Path(root) / _run_name(config) / f"{stamp}-{config_hash(config_to_dict(config))[:8]}"


def run_config(path_or_name: str | Path, overrides: list[str] | tuple[str, ...] = (),
               out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Load, resolve and run one config; return the summary dict the protocol wrote to ``out_dir``."""
    module, config, out = _prepare(path_or_name, overrides, out_dir)
    return module.run(config, out, progress=progress)


def _prepare(path_or_name, overrides, out_dir) -> tuple[ModuleType, Any, Path]:
    module, config = load(path_or_name, overrides)
    config = resolve(config)
    out = Path(out_dir) if out_dir is not None else default_out_dir(config)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out_dir must be a folder that can be created; got {str(out)!r} "
                          f"({exc.strerror or exc}).") from None
    return module, config, out


def to_toml(data: dict, _prefix: str = "") -> str:
    """A minimal TOML writer for resolved configs (scalars, strings, arrays, nested tables; None is a comment)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{_prefix}{key}"
        out += ("\n\n" if out else "") + f"[{name}]\n" + to_toml(value, f"{name}.")
    return out.strip("\n") + ("\n" if not _prefix else "")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} as TOML.")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(shipped_configs()) or "none yet"
    parser.add_argument("config", metavar="CONFIG", help=f"a TOML file or a shipped config name ({names})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.max_steps=100 (repeatable)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument("--out", default=None, help="output folder (default: runs/<name>/<UTC time>-<hash8>/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_main(args: argparse.Namespace) -> int:
    """``elasticity run``; a bad config raises ConfigError, which the CLI prints as one line (exit 2)."""
    module, config, out = _prepare(args.config, args.overrides, args.out)
    print(f"elasticity run: protocol {module.__name__.rsplit('.', 1)[-1]} -> {out}", flush=True)
    summary = module.run(config, out, progress=not args.no_progress)
    from .reproduce import claim_tier, format_tally, tier_tally

    claims = summary.get("claims", [])
    for claim in claims:
        ci = claim.get("ci")
        ci_text = f" CI [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
        print(f"  {claim['verdict']:<12} {claim_tier(claim):<12} {claim['id']}: measured "
              f"{_fmt(claim['measured'])}{ci_text}, predicted {_fmt(claim['predicted'])}")
    print(f"verdicts per tier: {format_tally(tier_tally(claims))}")
    print(f"wrote {out / 'summary.json'} in {summary.get('wall_time_s', 0):.0f} s")
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def add_resolve_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument("--format", choices=("toml", "json"), default="toml", help="output format (default toml)")


def resolve_main(args: argparse.Namespace) -> int:
    """``elasticity resolve``; a bad config raises ConfigError, which the CLI prints as one line (exit 2)."""
    _, config = load(args.config, args.overrides)
    data = resolved_dict(resolve(config))
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(to_toml(data["config"]))
        print("\n# derived (not config keys)")
        print("\n".join("# " + line for line in to_toml({"derived": data["derived"]}).splitlines()))
    return 0
