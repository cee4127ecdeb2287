"""The `elasticity` dispatcher: lazy subcommands, helpful errors, no torch for torch-free commands."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from empirical import cli
from tokentree.errors import ConfigError


def test_unknown_command_suggests_the_nearest_in_one_line(capsys):
    assert cli.main(["simulte"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'simulate'?" in err and err.count("\n") == 1 and err.startswith("elasticity: error:")


@pytest.fixture
def fake_command(monkeypatch):
    """``elasticity fake [--n N] [--boom user|internal] [--out DIR]`` registered for the test."""
    mod = types.ModuleType("fake_command")

    def add_arguments(parser):
        parser.add_argument("--n", type=int, default=0)
        parser.add_argument("--boom", choices=("user", "internal", "warn"), default=None)
        parser.add_argument("--out", default=None)

    def main(args):
        if args.boom == "user":
            raise ConfigError("train.learning_rate must be a float > 0;\ngot -1.")
        if args.boom == "internal":
            raise RuntimeError("a bug")
        if args.boom == "warn":
            import warnings

            warnings.warn("config key finetune.positive_epochs is deprecated:\nrename it to finetune.epochs",
                          FutureWarning, stacklevel=1)
        return 0

    mod.add_arguments, mod.main = add_arguments, main
    monkeypatch.setitem(sys.modules, "fake_command", mod)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_command", "add_arguments", "main", "fake"))


def test_an_option_error_is_one_line_that_points_to_help(fake_command, capsys):
    assert cli.main(["fake", "--n", "many"]) == 2
    err = capsys.readouterr().err
    assert err == ("elasticity fake: error: argument --n: invalid int value: 'many'; "
                   "see 'elasticity fake --help'.\n")
    assert cli.main(["fake", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_user_error_is_one_line_on_stderr_with_exit_2(fake_command, capsys):
    assert cli.main(["fake", "--boom", "user"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "elasticity fake: error: train.learning_rate must be a float > 0; got -1.\n"


@pytest.mark.filterwarnings("default::FutureWarning")
def test_a_warning_reaches_the_user_as_one_line(fake_command, capsys):
    assert cli.main(["fake", "--boom", "warn"]) == 0
    assert capsys.readouterr().err == ("elasticity fake: warning: config key finetune.positive_epochs is "
                                       "deprecated: rename it to finetune.epochs\n")


def test_an_internal_error_keeps_its_traceback(fake_command):
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fake", "--boom", "internal"])


def test_an_out_folder_under_a_file_is_refused_before_the_command_runs(fake_command, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert cli.main(["fake", "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--out must be a folder that can be created" in err and "afile' is a file" in err
    assert cli.main(["fake", "--out", str(tmp_path / "afile")]) == 2
    assert "which is a file" in capsys.readouterr().err
    assert cli.main(["fake", "--out", str(tmp_path / "new" / "deeper")]) == 0
    assert not (tmp_path / "new").exists(), "the check must not create anything"


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_every_command_module_exposes_its_entry_points():
    import importlib

    for name, (module, add, main, _) in cli.COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(getattr(mod, add)) and callable(getattr(mod, main)), name


def test_cli_help_and_reproduce_module_do_not_import_torch():
    code = ("import sys, empirical.cli, empirical.reproduce; empirical.cli.main(['--help']); "
            "bad = [m for m in ('torch', 'transformers', 'sympy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prove_and_simulate_commands_do_not_import_torch(tmp_path):
    code = ("import sys, empirical.cli as c; "
            f"rc = c.main(['prove', 'eq_joint_mixture', '--no-companions', '--report', r'{tmp_path / 'p'}']); "
            f"rc |= c.main(['simulate', '--config', 'quick', '--out', r'{tmp_path / 's'}', '--no-progress']); "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "print(rc, bad); sys.exit(1 if (bad or rc) else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
