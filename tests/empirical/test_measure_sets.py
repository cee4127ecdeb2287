"""The set loader of ``elasticity measure`` (:mod:`empirical.text_sets`): every format, every field check.

No model and no torch: each case writes a small file and reads it back, or checks the one-line
error a bad file gives. The ``datasets`` path runs on a stand-in module (no network).
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from empirical import text_sets as ts
from empirical.text_data import DataNotAvailableError
from tokentree.errors import UserError

TEXTS = ["A warm, funny film.", "Dull and far too long.", "  ", "The ending is perfect."]


def test_every_file_format_reads_the_same_texts(tmp_path):
    want = ("A warm, funny film.", "Dull and far too long.", "The ending is perfect.")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": 1}) + "\n" for t in TEXTS) + "\n")
    (tmp_path / "a.json").write_text(json.dumps({"data": [{"text": t} for t in TEXTS]}))
    (tmp_path / "a.csv").write_text("text,label\n" + "".join(f'"{t}",1\n' for t in TEXTS))
    (tmp_path / "a.txt").write_text("\n".join(TEXTS) + "\n")
    folder = tmp_path / "docs" / "sub"
    folder.mkdir(parents=True)
    for i, t in enumerate(TEXTS):
        (folder / f"{i}.txt").write_text(t)
    (folder / "ignored.md").write_text("not a .txt file")
    for path, fmt in (("a.jsonl", "jsonl"), ("a.json", "json"), ("a.csv", "csv"), ("a.txt", "txt"), ("docs", "folder")):
        s = ts.load_text_set(tmp_path / path, name="aligned")
        assert s.texts == want and s.meta["format"] == fmt and s.meta["n_blank_dropped"] == 1, path
        assert s.digest() == ts.text_set(list(want)).digest()
    assert ts.load_text_set(tmp_path / "a.jsonl", limit=2).texts == want[:2]


def test_a_record_field_must_exist_and_hold_text(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps({"review": "x"}) + "\n")
    with pytest.raises(DataNotAvailableError, match=r"aligned '.*r.jsonl' record 1 must have the field 'text'; it has "
                                                    r"\['review'\] \(pass --field NAME"):
        ts.load_text_set(tmp_path / "r.jsonl", name="aligned")
    assert ts.load_text_set(tmp_path / "r.jsonl", field_name="review").texts == ("x",)
    (tmp_path / "n.jsonl").write_text(json.dumps({"text": 3}) + "\n")
    with pytest.raises(DataNotAvailableError, match="record 1 field 'text' must be a string; got int"):
        ts.load_text_set(tmp_path / "n.jsonl")
    (tmp_path / "c.csv").write_text("review,label\nx,1\n")
    with pytest.raises(DataNotAvailableError, match=r"must have a column 'text'; its header is \['review', 'label'\]"):
        ts.load_text_set(tmp_path / "c.csv")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataNotAvailableError, match="line 1 must be one JSON object"):
        ts.load_text_set(tmp_path / "bad.jsonl")
    assert issubclass(DataNotAvailableError, UserError)  # the CLI prints it as one line, exit 2


def test_missing_empty_and_unknown_sets_fail_at_once(tmp_path):
    with pytest.raises(DataNotAvailableError, match=r"--align must be .* \(no such file or folder\)"):
        ts.locate_text_set(tmp_path / "nope.jsonl", "--align")
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(DataNotAvailableError, match=r"unknown suffix '.parquet'"):
        ts.locate_text_set(tmp_path / "x.parquet")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DataNotAvailableError, match="must hold at least one non-blank text"):
        ts.load_text_set(tmp_path / "e.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotAvailableError, match="must hold .txt files"):
        ts.load_text_set(tmp_path / "empty")
    with pytest.raises(DataNotAvailableError, match="must be a list of strings; item 2 is int"):
        ts.text_set(["a", 2])
    with pytest.raises(DataNotAvailableError, match="must name a data set"):
        ts.locate_text_set("  ")


def test_hub_sets_need_datasets_and_check_their_column(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    with pytest.raises(DataNotAvailableError, match="needs the 'datasets' package, which is not installed"):
        ts.locate_text_set("hf:imdb", "--align")
    with pytest.raises(DataNotAvailableError, match="hf:ID, hf:ID:SPLIT or hf:ID:CONFIG:SPLIT"):
        ts.locate_text_set("hf:a:b:c:d")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    asked = []

    class FakeSet(dict):
        column_names = ["text", "label"]

    def load_dataset(hub_id, config, split):
        asked.append((hub_id, config, split))
        return FakeSet(text=["good", "", "bad"], label=[1, 0, 0])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(ts.importlib.util, "find_spec", lambda name, *a: object() if name == "datasets"
                        else real(name, *a))
    s = ts.load_text_set("hf:stanfordnlp/imdb:test")
    assert s.texts == ("good", "bad") and asked == [("stanfordnlp/imdb", None, "test")]
    ts.load_text_set("hf:glue:sst2:train", field_name="text")
    assert asked[-1] == ("glue", "sst2", "train")
    with pytest.raises(DataNotAvailableError, match=r"must have a column 'sentence'; it has \['text', 'label'\]"):
        ts.load_text_set("hf:imdb", field_name="sentence")
