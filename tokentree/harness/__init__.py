"""The run harness every part uses: the run record, configs, statistics and verdicts, resumable parts.

It is the ground floor of the package: numpy only, and it knows nothing of token trees, so the
simulator, the demo, the proofs and every empirical protocol write one kind of ``summary.json``
with one set of sound verdict rules. Modules:

* :mod:`.results`: ``Claim`` (with its tier), ``write_summary``, atomic files, CSV, ``environment``,
  ``utc_now`` (the one time format);
* :mod:`.config`: frozen dataclass configs from TOML with ``--set key=value`` overrides;
* :mod:`.stats`: t-intervals, Fieller, bootstrap over units, slopes with CIs, crossings, verdicts;
* :mod:`.parts`: the seed normaliser, derived seeds, the parts store and the resume loops;
* :mod:`.figures`: a headless pyplot and an atomic PNG save (matplotlib imported lazily).
"""

from .config import (
    check_at_least as check_at_least,
    check_range as check_range,
    config_from_dict as config_from_dict,
    config_to_dict as config_to_dict,
    load_config as load_config,
    parse_override as parse_override,
    read_toml as read_toml,
    set_nested as set_nested,
)
from .figures import pyplot as pyplot, save_figure as save_figure
from .parts import (
    PartStore as PartStore,
    as_generator as as_generator,
    as_seed_sequence as as_seed_sequence,
    parts_key as parts_key,
    run_seeds as run_seeds,
    run_units as run_units,
    seed_invariant_config as seed_invariant_config,
    seed_list as seed_list,
)
from .results import (
    SUMMARY_SCHEMA as SUMMARY_SCHEMA,
    TIERS as TIERS,
    VERDICTS as VERDICTS,
    Claim as Claim,
    config_hash as config_hash,
    environment as environment,
    finite_or_none as finite_or_none,
    read_json as read_json,
    tally as tally,
    to_jsonable as to_jsonable,
    utc_now as utc_now,
    write_csv as write_csv,
    write_json_atomic as write_json_atomic,
    write_summary as write_summary,
    write_text_atomic as write_text_atomic,
)
from .stats import (
    MIN_SIGN_TEST_UNITS as MIN_SIGN_TEST_UNITS,
    band_verdict as band_verdict,
    crossing as crossing,
    exact_verdict as exact_verdict,
    ls_slope as ls_slope,
    ls_slope_ci as ls_slope_ci,
    mean_ci as mean_ci,
    mean_ci_columns as mean_ci_columns,
    min_detectable_effect as min_detectable_effect,
    normal_quantile as normal_quantile,
    paired_bootstrap_ci as paired_bootstrap_ci,
    ratio_of_means_ci as ratio_of_means_ci,
    sign_test_verdict as sign_test_verdict,
    sign_verdict as sign_verdict,
    t_quantile as t_quantile,
)

__all__ = [
    "Claim", "TIERS", "VERDICTS", "SUMMARY_SCHEMA", "tally", "write_summary", "write_csv", "write_json_atomic",
    "write_text_atomic", "read_json", "to_jsonable", "finite_or_none", "config_hash", "environment", "utc_now",
    "load_config", "read_toml", "config_from_dict", "config_to_dict", "parse_override", "set_nested", "check_range",
    "check_at_least",
    "t_quantile", "normal_quantile", "mean_ci", "mean_ci_columns", "ratio_of_means_ci", "ls_slope", "ls_slope_ci",
    "paired_bootstrap_ci", "min_detectable_effect", "crossing", "band_verdict", "sign_verdict",
    "sign_test_verdict", "exact_verdict", "MIN_SIGN_TEST_UNITS",
    "pyplot", "save_figure",
    "as_seed_sequence", "as_generator", "seed_list", "seed_invariant_config", "PartStore", "run_units", "run_seeds",
]
