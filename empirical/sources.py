"""Where models come from, the ground floor under :mod:`empirical.offline_models` and :mod:`empirical.scratch_lm`.

:class:`ModelSource` (what :func:`empirical.offline_models.locate_model` found), :class:`ModelNotAvailableError`,
:func:`cache_root` (converted models, trained evaluators, scratch LMs) and the two hub probes. Both modules
above import these from here, so neither has to import the other's module to name a source; offline_models
re-exports them (its public API is unchanged). No torch.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tokentree.errors import InvalidInputError, UserError

__all__ = ["ModelNotAvailableError", "ModelSource", "cache_root", "hub_offline", "hub_reachable"]


class ModelNotAvailableError(InvalidInputError, UserError):
    """Raised when a named model cannot be found or loaded; the message says how to get it."""


@dataclass(frozen=True)
class ModelSource:
    """Where :func:`locate_model` found a model.

    ``kind`` is ``"offline"`` (an alias of :data:`OFFLINE_MODELS`), ``"folder"``, ``"hub"`` or
    ``"scratch"`` (``scratch:<config>[@<step>]``, :mod:`empirical.scratch_lm`);
    ``location`` the folder (or GGUF file still to convert) or the hub id; ``local_files_only`` tells
    the loader never to ask the network (a cached hub id while the hub is offline or unreachable).
    """

    name: str
    kind: str
    location: str
    local_files_only: bool = True


def cache_root() -> Path:
    """Folder of converted models and trained evaluators: ``$ELASTICITY_CACHE`` or ``~/.cache/lm-elasticity``."""
    env = os.environ.get("ELASTICITY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lm-elasticity"


def hub_offline() -> bool:
    """True when the user switched the Hugging Face hub off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return True
    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub endpoint (or the HTTPS proxy) opens within ``timeout`` seconds.

    Name resolution runs in a daemon thread, so a hanging resolver cannot hold the caller longer
    than ``timeout``. This is a probe, not a promise: it only keeps offline machines from waiting on
    the hub client's retries.
    """
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover
        return False
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])
