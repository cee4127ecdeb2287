"""Frozen, typed, nested dataclass configs read from TOML, with ``--set key=value`` overrides.

One mechanism for every configurable part (the simulator, the demo, the experiments in ``empirical``):

* a config is a ``@dataclass(frozen=True, kw_only=True)`` whose fields may be other such
  dataclasses (TOML tables mirror the nesting);
* :func:`load_config` reads a TOML file (or nothing: the defaults), applies ``key=value``
  overrides (the value is parsed as a TOML literal; a bare word falls back to a string), checks
  every value against the field's annotated type and builds the dataclass, whose own
  ``__post_init__`` then checks ranges and raises :class:`~tokentree.errors.ConfigError`;
* an unknown key is an error that suggests the nearest valid key and lists the valid keys of that
  table.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["load_config", "read_toml", "config_from_dict", "config_to_dict", "parse_override", "set_nested",
           "check_range", "check_at_least"]

T = TypeVar("T")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"train.learning_rate=3e-4"`` into (["train", "learning_rate"], 3e-4).

    The value is parsed as a TOML literal (numbers, booleans, quoted strings, arrays); a bare word
    such as ``cpu`` falls back to the string ``"cpu"``.
    """
    if "=" not in text:
        raise ConfigError(f"override must look like key=value (e.g. train.learning_rate=3e-4); got {text!r}.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override must name a key before '='; got {text!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def set_nested(data: dict, path: list[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating tables; a value in the way is a ConfigError."""
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: '{part}' is a value, not a table.")
    node[path[-1]] = value


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; return (ok, converted value)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conv = _type_ok(value, arg)
            if ok:
                return True, conv
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in typing.get_args(tp), value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            inner = args[0]
        elif args:
            inner = args[0] if origin is list else None
        else:
            inner = Any
        if origin is tuple and inner is None:  # fixed-length tuple
            if len(args) != len(value):
                return False, value
            conv = []
            for v, a in zip(value, args):
                ok, c = _type_ok(v, a)
                if not ok:
                    return False, value
                conv.append(c)
            return True, tuple(conv)
        conv = []
        for v in value:
            ok, c = _type_ok(v, inner)
            if not ok:
                return False, value
            conv.append(c)
        return True, (tuple(conv) if origin is tuple else conv)
    if origin is dict:
        return isinstance(value, dict), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def config_from_dict(cls: type[T], data: dict, *, prefix: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a nested dict, checking keys and types (dotted paths in errors).

    A key the dict leaves out keeps its default. For a nested table that default is the field's
    ``default_factory()`` (or ``base``'s value), not the nested class's own defaults: a partial
    ``[sampling]`` table under ``GenerationConfig(top_k=0)`` keeps ``top_k = 0``. ``base``: an instance
    whose values the dict overrides (``dataclasses.replace``, so ``__post_init__`` checks the result).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a table; got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            # prefixes ("learn"), words ("rate") and initials ("lr" for learning_rate) first
            close = [f for f in fields if f.startswith(key) or key in f.split("_")
                     or key == "".join(w[0] for w in f.split("_") if w)]
            close = close or difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            table = prefix.rstrip(".") or "top level"
            raise ConfigError(f"Unknown config key '{dotted}'.{hint} "
                              f"Valid keys in [{table}]: {', '.join(sorted(fields))}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            default = getattr(base, key) if base is not None else (
                fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else None)
            default = default if isinstance(default, tp) else None
            kwargs[key] = config_from_dict(type(default) if default is not None else tp, value,
                                           prefix=f"{dotted}.", base=default)
            continue
        ok, conv = _type_ok(value, tp)
        if not ok:
            raise ConfigError(f"{dotted} must be of type {_describe(tp)}; got {value!r}.")
        kwargs[key] = conv
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise ConfigError(f"{prefix}{exc}") from None
        raise


def config_to_dict(config: Any) -> dict:
    """The inverse of :func:`config_from_dict` (tuples become lists, as in TOML)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = config_to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def read_toml(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The nested dict of TOML file ``path`` (None: empty) with ``key=value`` overrides applied."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file must be an existing TOML file; got {str(path)!r} (not found).")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(path)!r} could not be read: {exc}.") from None
    for text in overrides:
        keys, value = parse_override(text)
        set_nested(data, keys, value)
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Read ``path`` (TOML; None means the defaults), apply ``key=value`` overrides, build ``cls``."""
    return config_from_dict(cls, read_toml(path, overrides))


def check_range(name: str, value: Any, ok: bool, must: str) -> None:
    """Raise ConfigError('<name> must be <must>; got <value>.') unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name} must be {must}; got {value!r}.")


def check_at_least(section: Any, **minimums: int) -> None:
    """:func:`check_range` each named field of ``section`` against its lower bound, in the order given.

    The one home of the commonest range check of a config section, "an int >= k"
    (``check_at_least(self, n_samples=1, seed=0)``): the first field below its bound raises
    ConfigError('<name> must be an int >= <k>; got <value>.'). Types are the loader's concern
    (:func:`config_from_dict`); only the bound is checked here.
    """
    for name, low in minimums.items():
        value = getattr(section, name)
        check_range(name, value, value >= low, f"an int >= {low}")
