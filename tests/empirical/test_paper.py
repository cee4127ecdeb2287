"""The paper's reported values (empirical.paper_values) and the paper-vs-ours plots (empirical.paper_plots)."""

from __future__ import annotations

import json

import pytest

from empirical import paper_plots, paper_values as pv
from tokentree.errors import InvalidInputError
from tokentree.harness import to_jsonable


def test_table1_has_27_cells_all_inverse_below_forward_with_the_digests_gap_range():
    rows = pv.resistance_gaps()
    assert len(rows) == 27
    assert all(r["gap"] > 0 for r in rows)
    gaps = sorted(r["gap"] for r in rows)
    assert gaps[0] == pytest.approx(0.0002, abs=1e-9)      # Truthful, Llama2-7B, θ2/θ3
    assert gaps[-1] == pytest.approx(0.0961, abs=1e-9)     # Alpaca, Llama3-8B, θ2/θ3


def test_table3_orderings_are_the_papers_claim_16():
    t = pv.TABLE3_KL
    for model in ("Llama2-7B", "Gemma-2B"):
        kl = t["kl_after_positive"][model]
        neg = t["negatives_to_epsilon"][model]
        assert len(kl) == len(neg) == len(t["positives"])
        assert all(a < b for a, b in zip(kl, kl[1:]))      # KL grows with safe data
        assert all(a > b for a, b in zip(neg, neg[1:]))    # fewer unsafe samples needed
    assert t["epsilon"] == 0.01


def test_figure_curves_align_with_their_x_values_and_crossings_order_as_claim_17():
    for fig in (pv.FIGURE5_MODEL_SIZE, pv.FIGURE6_PRETRAIN_TOKENS):
        for curve in fig["curves"].values():
            assert len(curve) == len(fig["negatives"])
    for ref in (pv.FIGURE4_IMDB["Gemma-2B"], pv.FIGURE4_IMDB["Llama2-7B"]):
        for curve in ref["curves"].values():
            assert len(curve) == len(ref["negatives"])
    size = pv.FIGURE5_MODEL_SIZE["negatives_to_pretrained"]
    assert size["0.5B"] > size["4B"] > size["7B"]
    vol = pv.FIGURE6_PRETRAIN_TOKENS
    assert vol["negatives_to_pretrained"]["2T"] is None and vol["lower_bounds"]["2T"] == 2000
    assert vol["negatives_to_pretrained"]["2.5T"] > vol["negatives_to_pretrained"]["3T"]
    # Figure 4 (a): at the first negative point, more positive data scores higher (Gemma IMDb)
    first = [c[0] for _, c in sorted(pv.FIGURE4_IMDB["Gemma-2B"]["curves"].items())]
    assert first == sorted(first)


def test_paper_values_are_plain_json_data_and_name_every_claim_14_to_17():
    text = json.dumps(to_jsonable({k: getattr(pv, k) for k in pv.__all__ if k.isupper()}))
    assert "Llama2-7B" in text
    assert {c[:2] for c in pv.CLAIMS} == {"14", "15", "16", "17"}


def _band(values, width=0.05):
    return {"mean": list(values), "low": [v - width for v in values], "high": [v + width for v in values]}


def test_plots_write_pngs_that_label_the_papers_values(tmp_path):
    pytest.importorskip("matplotlib")
    out = paper_plots.plot_resistance(
        {"pairs": ["1-2", "2-3", "1-3"], "raw": _band([0.01, -0.02, 0.0]),
         "corrected": _band([0.02, 0.01, 0.03]), "kl": _band([0.1, 0.0, 0.2])}, tmp_path / "res.png")
    assert out.stat().st_size > 10_000
    out = paper_plots.plot_rebound(
        {"negatives": [0, 10, 50, 200], "pretrained": 0.5,
         "curves": {100: _band([0.9, 0.8, 0.5, 0.1]), 1000: _band([0.99, 0.95, 0.7, 0.2])}},
        tmp_path / "reb.png", scale=0.1)
    assert out.stat().st_size > 10_000
    out = paper_plots.plot_table3([100, 1000], _band([0.2, 0.3]),
                                  {"mean": [50.0, None], "low": [40.0, None], "high": [60.0, None]},
                                  tmp_path / "t3.png", scale=0.1, epsilon=0.05, lower_bound=200)
    assert out.stat().st_size > 10_000
    out = paper_plots.plot_scaling("size", ["a", "b", "c"], [1e4, 1e5, 1e6],
                                   {"mean": [80.0, 60.0, None], "low": [70.0, 50.0, None],
                                    "high": [90.0, 70.0, None]}, tmp_path / "sc.png",
                                   xlabel="parameters", lower_bounds=[None, None, 200.0])
    assert out.stat().st_size > 10_000


def test_plots_reject_misaligned_bands_and_bad_scale_with_the_parameter_named(tmp_path):
    with pytest.raises(InvalidInputError, match=r"ours\['raw'\]\['low'\] must have 3 values"):
        paper_plots.plot_resistance({"pairs": ["1-2", "2-3", "1-3"],
                                     "raw": {"mean": [0, 0, 0], "low": [0], "high": [0, 0, 0]},
                                     "corrected": _band([0, 0, 0])}, tmp_path / "x.png")
    with pytest.raises(InvalidInputError, match="scale must be a float > 0"):
        paper_plots.plot_rebound({"negatives": [1], "curves": {}}, tmp_path / "x.png", scale=0)
    with pytest.raises(InvalidInputError, match="axis must be 'size' or 'volume'"):
        paper_plots.plot_scaling("depth", [], [], _band([]), tmp_path / "x.png", xlabel="")


def test_rebound_contrasts_read_figure4_as_the_claims_test_it():
    c = pv.rebound_contrasts("Gemma-2B")
    assert c["positives"] == (1000, 10000)
    assert c["start_gain"] == pytest.approx(0.95 - 0.86)                      # 15a: more positive, higher start
    assert c["fall_gain"] == pytest.approx(((0.95 - 0.78) + (0.95 - 0.34) + (0.95 - 0.12)) / 3
                                           - ((0.86 - 0.76) + (0.86 - 0.52) + (0.86 - 0.36)) / 3)
    assert c["final_gap"] == pytest.approx(0.12 - 0.36)                       # 15b: the ordering reverses
    assert max(c["final_minus_pretrained"].values()) < 0                      # 15c: every curve ends below 0.54
