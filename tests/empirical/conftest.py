"""Empirical tier: torch lives here (never in the root conftest). GPU tests skip without CUDA.

Every test in this folder is marked ``empirical``; ``gpu`` tests get a skip when
``torch.cuda.is_available()`` is false, and torch runs single-threaded (the CI box has 2 shared cores).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TESTS = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama with a BPE tokenizer trained on the fixture reviews, saved like a real model
    (built once per test module by ``tests/support/tiny_lm.py``; the tests folder is not a package)."""
    from empirical.text_data import load_imdb

    spec = importlib.util.spec_from_file_location("tiny_lm", TESTS / "support" / "tiny_lm.py")
    tiny_lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_lm)
    reviews = load_imdb(TESTS / "fixtures" / "tiny_reviews.csv")
    return tiny_lm.build_tiny_causal_lm([r.text for r in reviews], tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def toy_run(request, tmp_path_factory):
    """The test module's ``PROTOCOL`` run once on its ``TOY`` overrides: (config, output folder, summary)."""
    from tokentree.harness import load_config

    protocol, overrides = request.module.PROTOCOL, request.module.TOY
    out = tmp_path_factory.mktemp(protocol.__name__.rsplit(".", 1)[-1])
    cfg = load_config(protocol.Config, None, overrides)
    return cfg, out, protocol.run(cfg, out, progress=False)
