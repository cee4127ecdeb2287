"""empirical.runner: protocol discovery by file name, resolution, output folders, CLI errors."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest

from empirical import cli, runner
from empirical.config import TrainConfig
from empirical.protocols._common import ExperimentBase
from tokentree.errors import ConfigError
from tokentree.harness import Claim, PartStore, band_verdict, mean_ci, seed_list, utc_now, write_summary


@dataclass(frozen=True, kw_only=True)
class ToyConfig(ExperimentBase):
    protocol: str = "toy_fixture"
    value: float = 1.0
    train: TrainConfig = field(default_factory=TrainConfig)
    second: TrainConfig = field(default_factory=TrainConfig)


def _toy_run(config, out_dir, *, progress=True):
    import time

    claim = Claim(id="toy.value", tier="sanity", statement="value is positive", predicted=">0",
                  measured=config.value, verdict="holds" if config.value > 0 else "fails", rule="value > 0")
    return write_summary(out_dir, config=config, claims=[claim], started_at=utc_now(), t0=time.perf_counter())


@pytest.fixture()
def toy(monkeypatch, tmp_path):
    module = types.ModuleType("empirical.protocols.toy_fixture")
    module.Config, module.run = ToyConfig, _toy_run
    monkeypatch.setitem(sys.modules, "empirical.protocols.toy_fixture", module)
    path = tmp_path / "toy.toml"
    path.write_text('protocol = "toy_fixture"\nname = "toy"\nseed = 5\nn_seeds = 4\nvalue = 2.5\n'
                    '[train]\nmax_steps = 7\n')
    return path


def test_load_discovers_the_protocol_module_and_applies_overrides(toy):
    module, config = runner.load(toy, ["train.max_steps=9"])
    assert module.Config is ToyConfig and config.value == 2.5 and config.train.max_steps == 9


def test_resolve_replaces_auto_device_and_precision_and_derives_seeds(toy):
    _, config = runner.load(toy)
    resolved = runner.resolve(config)
    assert resolved.train.device in ("cpu", "cuda:0") and resolved.train.precision in ("fp32", "bf16")
    assert (resolved.second.device, resolved.second.precision) == (resolved.train.device, resolved.train.precision)
    data = runner.resolved_dict(resolved)
    assert data["derived"]["seeds"] == seed_list(5, 4) and len(set(seed_list(5, 4))) == 4
    assert seed_list(5, 4) == seed_list(5, 4) and seed_list(5, 4) != seed_list(6, 4)


def test_run_config_writes_summary_into_the_default_folder(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = runner.run_config(toy, ["value=3"])
    folders = list((tmp_path / "runs" / "toy").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith(summary["config_hash"][:8])
    on_disk = json.loads((folders[0] / "summary.json").read_text())
    assert on_disk == summary and on_disk["claims"][0]["measured"] == 3.0
    assert on_disk["config"]["train"]["device"] in ("cpu", "cuda:0")


def test_cli_resolve_prints_toml_that_reloads(toy, capsys, tmp_path):
    assert cli.main(["resolve", str(toy), "--set", "value=4"]) == 0
    text = capsys.readouterr().out
    import tomllib

    data = tomllib.loads(text)
    assert data["value"] == 4.0 and data["train"]["max_steps"] == 7
    assert "# derived" in text
    assert cli.main(["resolve", str(toy), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["derived"]["seeds"] == seed_list(5, 4)


def test_resolve_decides_each_device_once_for_the_whole_config(toy, monkeypatch):
    from empirical import config as config_module

    calls = []

    def fake_resolve_device(device):
        calls.append(device)
        return "cpu"

    monkeypatch.setattr(config_module, "resolve_device", fake_resolve_device)
    _, config = runner.load(toy)  # two TrainConfigs, both device = "auto"
    resolved = runner.resolve(config)
    assert calls == ["auto"] and resolved.train.device == resolved.second.device == "cpu"
    assert resolved.train.precision == "fp32"


def test_cli_run_writes_into_out_and_counts_per_tier(toy, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["run", str(toy), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert (out / "summary.json").is_file() and "toy.value" in text
    assert "verdicts per tier: sanity: 1 holds, 0 fail, 0 inconclusive" in text


def test_run_config_names_an_out_dir_that_cannot_be_created(toy, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"out_dir must be a folder that can be created; got '.*afile/sub'"):
        runner.run_config(toy, out_dir=tmp_path / "afile" / "sub")


@pytest.mark.parametrize("text, overrides, match", [
    ('name = "x"\n', [], "protocol must be set at the top level"),
    ('protocol = "no_such_protocol"\n', [], "protocol must be the name of a module in empirical/protocols"),
    ('protocol = "toy_fixture"\n', ["valu=1"], "Unknown config key 'valu'. Did you mean 'value'"),
    ('protocol = "toy_fixture"\n', ["train.max_steps=-1"], r"train\.max_steps must be an int >= 0; got -1"),
    ('protocol = "toy_fixture"\nn_seeds = 0\n', [], r"n_seeds must be an int in \[1, 1000\]; got 0"),
    ('protocol = "toy_fixture"\nvalue = \n', [], r"config file '.*bad\.toml' is not valid TOML"),
    ('protocol = "toy_fixture"\n', ["value"], r"override must look like key=value"),
])
def test_bad_configs_name_the_problem(toy, tmp_path, text, overrides, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        runner.load(path, overrides)


def test_unknown_config_name_suggests_the_nearest_and_lists_shipped_configs(capsys):
    with pytest.raises(ConfigError, match=r"got 'joint_quik'\. Did you mean 'joint_quick'\? Shipped configs: "
                                          r".*joint_cpu, .*sequential_quick"):
        runner.find_config("joint_quik")
    with pytest.raises(ConfigError, match=r"got 'no_such_config'\. Shipped configs: "):
        runner.find_config("no_such_config")
    assert cli.main(["run", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elasticity run: error: CONFIG must be a TOML file") and err.count("\n") == 1


def test_a_missing_config_file_is_named_as_such(tmp_path):
    with pytest.raises(ConfigError, match=r"got '.*/nope\.toml' \(no such file\)"):
        runner.find_config(tmp_path / "nope.toml")
    assert runner.find_config("joint_quick.toml") == runner.CONFIG_DIR / "joint_quick.toml"


def test_part_store_resumes_only_for_the_same_config(toy, tmp_path):
    _, config = runner.load(toy)
    store = PartStore(tmp_path, config)
    store.put("seed0_l0.1", {"x": 1})
    assert store.get("seed0_l0.1") == {"x": 1} and store.get("other") is None
    _, changed = runner.load(toy, ["value=9"])
    assert PartStore(tmp_path, changed).get("seed0_l0.1") is None


def test_mean_ci_and_band_verdict():
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and ci[0] < 2.0 < ci[1] and ci[1] - 2.0 == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert mean_ci([1.0]) == (1.0, None)
    assert band_verdict([-12, -9], -40, -2.5) == "holds"
    assert band_verdict([1, 2], -40, -2.5) == "fails"
    assert band_verdict([-5, 1], -40, -2.5) == "inconclusive"
    assert band_verdict(None, 0, 1) == "inconclusive"


def test_run_units_runs_missing_units_in_worker_processes_and_stores_them(toy, tmp_path):
    from tokentree.harness import run_units

    _, config = runner.load(toy)
    store = PartStore(tmp_path, config)
    store.put("u0", {"done": "before"})
    units = [("u0", ({"x": 0},)), ("u1", ({"x": 1},)), ("u2", ({"x": 2},))]
    out = run_units(dict, units, store, workers=2)
    assert out == {"u0": {"done": "before"}, "u1": {"x": 1}, "u2": {"x": 2}}
    assert store.get("u2") == {"x": 2}


def test_ratio_of_means_ci_is_fiellers_interval():
    from scipy import stats

    from tokentree.harness import ratio_of_means_ci

    # a denominator without noise: Fieller reduces to the t-interval of the numerator divided by it
    num, den = [1.0, 2.0, 3.0, 4.0], [-0.5] * 4
    r, ci = ratio_of_means_ci(num, den)
    half = stats.t.ppf(0.975, 3) * np.std(num, ddof=1) / 2
    assert r == pytest.approx(-5.0) and ci == pytest.approx(sorted([(2.5 - half) / -0.5, (2.5 + half) / -0.5]))
    # a denominator that is not significantly away from zero: no bounded interval
    assert ratio_of_means_ci([1.0, 1.1, 0.9], [0.1, -0.1, 0.05])[1] is None
    # the interval is not centred on the ratio: it stretches toward the small-denominator side
    r, ci = ratio_of_means_ci([1.0, 1.2, 0.8, 1.1, 0.9], [-0.1, -0.06, -0.08, -0.12, -0.09])
    assert ci[0] < r < ci[1] and (r - ci[0]) > (ci[1] - r)
