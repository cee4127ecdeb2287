"""Empirical tier: torch lives here (never in the root conftest). GPU tests skip without CUDA.

Every test in this folder is marked ``empirical``; ``gpu`` tests get a skip when
``torch.cuda.is_available()`` is false, and torch runs single-threaded (the CI box has 2 shared cores).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none visible)")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "tests/empirical" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.empirical)
            if "gpu" in item.keywords and not has_cuda:
                item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def world():
    from empirical.config import LMWorldConfig
    from empirical.data import build_world

    return build_world(LMWorldConfig(min_length=4, max_length=10, content_vocab=12))


@pytest.fixture()
def tiny_model(world):
    from empirical.config import ModelConfig
    from empirical.models import build_model

    return build_model(ModelConfig(size="pico"), world.vocab_size, max_positions=world.max_sequence_tokens, seed=0)
