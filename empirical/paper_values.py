"""The paper's reported numbers (Ji et al., ACL 2025, §5 and Appendix B), as plain data.

Everything here is **the paper's**, transcribed from the project digest (``../shared/paper.md`` §4 and
§5.3); nothing is measured by this package. Plots and reports must label these values as the
paper's. Confidence labels follow the digest:

* ``[C]`` read from an image of the paper's own table or figure (Table 1, Table 3, Figures 4–6);
* ``[S]`` one secondary source (Appendix B.1's Table 2 example);
* values of Figures 4–6 were **read by eye** from the figure images: about ±0.03 on IMDb scores and
  ±0.5 on BeaverTails safety scores. Treat them as approximate.

Conventions of this module (so that any part can use it without reading the paper):

* A resistance *pair* ``"k-l"`` (k < l) names slices θ_k, θ_l of one SFT epoch. ``inverse`` is the
  training loss of θ_l trained on D_k (Path B), ``forward`` the loss of θ_k trained on D_l (Path A).
  Resistance means ``inverse < forward``.
* Rebound curves are tuples aligned with the ``negatives`` tuple beside them. IMDb scores are the
  fraction of responses classified positive (pre-trained ≈ 0.54); BeaverTails scores are the average
  safety score (negated cost; higher is safer).
* Figure 5/6 list the first negative-data point as 150: the digest reads "100–200" there.
* ``None`` means "not reached inside the plotted range" (a lower bound is given beside it).

The module holds only literals and tuples (no numpy), so it imports in microseconds and can be
embedded in JSON with :func:`tokentree.harness.to_jsonable`.
"""

from __future__ import annotations

__all__ = [
    "SOURCE",
    "TABLE1_RESISTANCE",
    "TABLE2_KL_CHANGE",
    "FIGURE4_IMDB",
    "FIGURE4_BEAVERTAILS",
    "TABLE3_KL",
    "FIGURE5_MODEL_SIZE",
    "FIGURE6_PRETRAIN_TOKENS",
    "CLAIMS",
    "resistance_gaps",
    "rebound_contrasts",
]

SOURCE = ("Ji et al., 'Language Models Resist Alignment: Evidence From Data Compression', ACL 2025 "
          "(values as transcribed in the project digest, ../shared/paper.md §4)")

# --- §5.1, Table 1 [C]: training loss, inverse (Path B) vs forward (Path A), one SFT epoch in 3 slices.
# Column order of the paper: θ2→θ1 (inv) | θ1→θ2 (fwd) | θ3→θ2 (inv) | θ2→θ3 (fwd) | θ3→θ1 (inv) | θ1→θ3 (fwd).
TABLE1_RESISTANCE: dict[str, dict[str, dict[str, dict[str, float]]]] = {
    "Alpaca": {
        "Llama2-7B": {"1-2": {"inverse": 0.1589, "forward": 0.2018},
                      "2-3": {"inverse": 0.1953, "forward": 0.2143},
                      "1-3": {"inverse": 0.1666, "forward": 0.2346}},
        "Llama2-13B": {"1-2": {"inverse": 0.1772, "forward": 0.1958},
                       "2-3": {"inverse": 0.2149, "forward": 0.2408},
                       "1-3": {"inverse": 0.1835, "forward": 0.2345}},
        "Llama3-8B": {"1-2": {"inverse": 0.2540, "forward": 0.2573},
                      "2-3": {"inverse": 0.2268, "forward": 0.3229},
                      "1-3": {"inverse": 0.2341, "forward": 0.2589}},
    },
    "Truthful": {
        "Llama2-7B": {"1-2": {"inverse": 0.1909, "forward": 0.2069},
                      "2-3": {"inverse": 0.1719, "forward": 0.1721},
                      "1-3": {"inverse": 0.2011, "forward": 0.2542}},
        "Llama2-13B": {"1-2": {"inverse": 0.1704, "forward": 0.1830},
                       "2-3": {"inverse": 0.1544, "forward": 0.1640},
                       "1-3": {"inverse": 0.1825, "forward": 0.2429}},
        "Llama3-8B": {"1-2": {"inverse": 0.2118, "forward": 0.2256},
                      "2-3": {"inverse": 0.2100, "forward": 0.2173},
                      "1-3": {"inverse": 0.2393, "forward": 0.2898}},
    },
    "Safe": {
        "Llama2-7B": {"1-2": {"inverse": 0.2730, "forward": 0.2809},
                      "2-3": {"inverse": 0.2654, "forward": 0.2691},
                      "1-3": {"inverse": 0.2845, "forward": 0.2883}},
        "Llama2-13B": {"1-2": {"inverse": 0.2419, "forward": 0.2439},
                       "2-3": {"inverse": 0.2320, "forward": 0.2327},
                       "1-3": {"inverse": 0.2464, "forward": 0.2606}},
        "Llama3-8B": {"1-2": {"inverse": 0.2097, "forward": 0.2156},
                      "2-3": {"inverse": 0.2008, "forward": 0.2427},
                      "1-3": {"inverse": 0.2277, "forward": 0.2709}},
    },
}

# --- Appendix B.1, Table 2 [S]: KL change instead of loss, Llama2-7B, finer slicing (7 pairs).
# Only the first pair's values are known; forward > inverse in all 7 pairs.
TABLE2_KL_CHANGE: dict = {
    "model": "Llama2-7B",
    "n_pairs": 7,
    "n_forward_greater": 7,
    "known_pairs": {"1-2": {"forward": 0.4568, "inverse": 0.2796}},
}

# --- §5.2, Figure 4 [C trends; values by eye ±0.03]: IMDb positive score after positive then negative SFT.
FIGURE4_IMDB: dict = {
    "Gemma-2B": {
        "pretrained": 0.54,
        "negatives": (100, 500, 1000, 2000),
        "curves": {1000: (0.86, 0.76, 0.52, 0.36),
                   2000: (0.90, 0.75, 0.43, 0.38),
                   5000: (0.92, 0.77, 0.36, 0.12),
                   10000: (0.95, 0.78, 0.34, 0.12)},
    },
    "Llama2-7B": {
        "pretrained": 0.54,
        "negatives": (100, 500, 1000, 2000),
        "curves": {1000: (0.92, 0.71, 0.28, 0.12)},
        # the 2000, 5000 and 10000 curves overlap in the figure; the digest gives a band
        "band_2000_to_10000": {"low": (0.93, 0.61, 0.13, 0.10), "high": (0.95, 0.68, 0.16, 0.12)},
    },
}

# --- §5.2, Figure 4 [C trends; values by eye ±0.5]: BeaverTails average safety score (higher = safer).
FIGURE4_BEAVERTAILS: dict = {
    "Gemma-2B": {"pretrained": -12.2, "negatives": (0, 500, 1000, 2000),
                 "curves": {1000: (-6.3, -8.6, -10.7, -11.7), 10000: (-3.1, -9.3, -10.9, -12.2)}},
    "Llama2-7B": {"pretrained": -11.1, "negatives": (0, 500, 1000, 2000),
                  "curves": {1000: (-4.5, -6.9, -8.3, -8.8), 10000: (-3.3, -10.1, -10.4, -11.0)}},
}

# --- Appendix B.2, Table 3 [C]: (a) KL(safe-tuned ‖ initial) after positive SFT; (b) unsafe samples
# needed for the KL between the fine-tuned and the pre-trained model to drop below epsilon.
TABLE3_KL: dict = {
    "epsilon": 0.01,
    "positives": (1000, 2000, 5000, 10000),
    "kl_after_positive": {"Llama2-7B": (0.21, 0.22, 0.26, 0.27),
                          "Gemma-2B": (0.18, 0.21, 0.24, 0.25)},
    "negatives_to_epsilon": {"Llama2-7B": (961, 844, 801, 729),
                             "Gemma-2B": (923, 853, 709, 598)},
}

# --- §5.3, Figure 5 [C trends; values by eye]: model size (Qwen1.5), IMDb, averaged over positive settings.
FIGURE5_MODEL_SIZE: dict = {
    "pretrained": 0.54,
    "negatives": (150, 500, 1000, 2000),
    "sizes": ("0.5B", "4B", "7B"),
    "n_params": {"0.5B": 0.5e9, "4B": 4e9, "7B": 7e9},
    "curves": {"0.5B": (0.90, 0.76, 0.35, 0.24),
               "4B": (0.90, 0.47, 0.21, 0.16),
               "7B": (0.90, 0.22, 0.15, 0.10)},
    # arrows in the figure: negatives at which each curve reaches the pre-trained level
    "negatives_to_pretrained": {"0.5B": 750, "4B": 450, "7B": 350},
    "beavertails": {"pretrained": -11.0,
                    "start": {"0.5B": -4.8, "4B": -3.3, "7B": -1.7},
                    "at_2000": {"0.5B": -14.2, "4B": -12.5, "7B": -12.2}},
}

# --- §5.3, Figure 6 [C trends; values by eye]: pre-training tokens (TinyLlama-1.1B checkpoints), IMDb.
FIGURE6_PRETRAIN_TOKENS: dict = {
    "pretrained": 0.54,
    "negatives": (150, 500, 1000, 2000),
    "volumes": ("2T", "2.5T", "3T"),
    "n_tokens": {"2T": 2.0e12, "2.5T": 2.5e12, "3T": 3.0e12},
    "curves": {"2T": (0.90, 0.87, 0.80, 0.60),
               "2.5T": (0.91, 0.85, 0.51, 0.26),
               "3T": (0.92, 0.59, 0.14, 0.12)},
    # None: the 2T curve is still at 0.60 at 2000 negatives (crossing > 2000)
    "negatives_to_pretrained": {"2T": None, "2.5T": 1000, "3T": 550},
    "lower_bounds": {"2T": 2000},
    "beavertails": {"pretrained": -11.0,
                    "start": {"2T": -7.1, "2.5T": -6.0, "3T": -5.6},
                    "at_1000": {"2T": -10.3, "2.5T": -12.3, "3T": -12.5}},
    # Appendix C.3: at 0.1T the score barely moves; elasticity emerges between 0.1T and 0.5T
    "threshold": {"absent_at": "0.1T", "present_from": "0.5T"},
}

# --- Digest §5.3 items 14–17: the empirical claims and the paper's direction for each.
CLAIMS: dict[str, dict[str, str]] = {
    "14": {"name": "resistance",
           "statement": "For slices θ1..θ3 of one SFT epoch, inverse-alignment training loss is below "
                        "forward-alignment loss for every pair (27/27 in Table 1); KL-change variant: "
                        "forward ΔKL > inverse ΔKL (7/7 in Table 2).",
           "direction": "inverse < forward"},
    "15a": {"name": "rebound.initial_order",
            "statement": "At 100 negatives the score increases with positive data (1000 < 2000 < 5000 < 10000).",
            "direction": "score increasing in positives"},
    "15b": {"name": "rebound.reversal",
            "statement": "After about 1000 negatives the ordering reverses or collapses: more positive data "
                         "gives a lower or equal score.",
            "direction": "score non-increasing in positives"},
    "15c": {"name": "rebound.approach",
            "statement": "The curves approach the pre-trained level and then flatten.",
            "direction": "drop per negative sample slows near the pre-trained level"},
    "16a": {"name": "kl.after_positive",
            "statement": "Post-alignment KL to the pre-trained model increases with positive data "
                         "(0.21 → 0.27, Llama2-7B).",
            "direction": "KL increasing in positives"},
    "16b": {"name": "kl.negatives_to_epsilon",
            "statement": "The negatives needed to bring KL to the pre-trained model below ε = 0.01 decrease "
                         "with positive data (961 → 729 Llama2-7B; 923 → 598 Gemma-2B).",
            "direction": "negatives-to-ε decreasing in positives"},
    "17a": {"name": "scaling.model_size",
            "statement": "Negatives needed to reach the pre-trained level decrease with model size "
                         "(0.5B ≈ 750 > 4B ≈ 450 > 7B ≈ 350).",
            "direction": "decreasing in model size"},
    "17b": {"name": "scaling.pretrain_volume",
            "statement": "Negatives needed to reach the pre-trained level decrease with pre-training volume "
                         "(2T > 2000 > 2.5T ≈ 1000 > 3T ≈ 550); absent at 0.1T, present from 0.5T.",
            "direction": "decreasing in pre-training volume"},
}


def resistance_gaps() -> list[dict]:
    """Table 1 as rows ``{dataset, model, pair, inverse, forward, gap}`` with gap = forward − inverse.

    >>> rows = resistance_gaps()
    >>> len(rows), all(r["gap"] > 0 for r in rows)
    (27, True)
    >>> round(min(r["gap"] for r in rows), 4), round(max(r["gap"] for r in rows), 4)
    (0.0002, 0.0961)
    """
    rows = []
    for dataset, models in TABLE1_RESISTANCE.items():
        for model, pairs in models.items():
            for pair, v in pairs.items():
                rows.append({"dataset": dataset, "model": model, "pair": pair, "inverse": v["inverse"],
                             "forward": v["forward"], "gap": round(v["forward"] - v["inverse"], 10)})
    return rows


def rebound_contrasts(model: str = "Gemma-2B") -> dict:
    """Figure 4's IMDb curves of ``model`` as the contrasts the rebound claims test (most vs least positive).

    ``start_gain``: score(most) − score(least) at the first negative volume (claim 15a); ``fall_gain``:
    fall(most) − fall(least), a fall being the mean over the later negative volumes of the first
    score minus the score there (the rebound ordering); ``final_gap``: score(most) − score(least) at the
    last volume (15b); ``final_minus_pretrained``: each curve's last score minus the pre-trained level
    (15c). Read by eye from the figure (about ±0.03), so round to two decimals.

    >>> c = rebound_contrasts()
    >>> round(c["start_gain"], 2), round(c["fall_gain"], 2), round(c["final_gap"], 2)
    (0.09, 0.22, -0.24)
    >>> [round(x, 2) for x in c["final_minus_pretrained"].values()]
    [-0.18, -0.16, -0.42, -0.42]
    """
    ref = FIGURE4_IMDB[model]
    curves = ref["curves"]
    lo, hi = min(curves), max(curves)

    def fall(c):
        return sum(c[0] - x for x in c[1:]) / (len(c) - 1)

    return {"model": model, "positives": (lo, hi), "negatives": ref["negatives"],
            "start_gain": curves[hi][0] - curves[lo][0],
            "fall_gain": fall(curves[hi]) - fall(curves[lo]),
            "final_gap": curves[hi][-1] - curves[lo][-1],
            "final_minus_pretrained": {p: c[-1] - ref["pretrained"] for p, c in curves.items()}}
