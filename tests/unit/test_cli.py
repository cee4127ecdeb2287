"""The `elasticity` dispatcher: lazy subcommands, helpful errors, no torch for torch-free commands."""

from __future__ import annotations

import subprocess
import sys

from empirical import cli


def test_unknown_command_suggests_the_nearest(capsys):
    assert cli.main(["simulte"]) == 2
    assert "Did you mean 'simulate'?" in capsys.readouterr().err


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
