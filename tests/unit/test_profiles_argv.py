"""Every part of every ``reproduce`` profile parses with the real subcommand parser, and its config loads.

``reproduce`` runs each part as an argv string that re-enters the CLI, so a renamed flag or a
config that no longer loads would otherwise surface only as a "failed" part at run time. Nothing is
run here: the argv goes through the parser that ``elasticity`` itself builds (the command's own
``add_arguments``), and the config named by ``run CONFIG`` or ``simulate --config`` is built with
the loader the command uses (types, ranges and keys checked; no torch, no device query).
"""

from __future__ import annotations

import pytest

from empirical import cli, reproduce, runner

PARTS = [pytest.param(profile, part, id=f"{profile}/{part.name}")
         for profile, parts in reproduce.PROFILES.items() for part in parts]


@pytest.mark.parametrize("profile, part", PARTS)
def test_every_part_parses_with_the_real_parser_and_its_config_loads(profile, part, tmp_path):
    argv = part.command(tmp_path / part.name)
    parser, module, main_name = cli.command_parser(argv[0])  # raises UsageError for an unknown command
    args = parser.parse_args(argv[1:])  # raises UsageError (not SystemExit) for a renamed or unknown flag
    assert callable(getattr(module, main_name))
    if argv[0] in ("run", "simulate"):
        assert args.out == str(tmp_path / part.name), "the part must write into its own folder"
    if argv[0] == "prove":
        assert args.report == str(tmp_path / part.name)
    if argv[0] == "run":
        path = runner.find_config(args.config)
        assert path.parent == runner.CONFIG_DIR, f"{profile}/{part.name}: {args.config!r} must be a shipped config"
        protocol, config = runner.load(args.config, args.overrides)
        assert protocol.__name__ == f"empirical.protocols.{config.protocol}", "a config runs the protocol it names"
        assert part.title and part.about, f"{part.name} has no title or description"
        assert type(config) is protocol.Config and runner.resolved_dict(config)["derived"]["config_hash"]
    elif argv[0] == "simulate":
        from tokentree.sim.config import CONFIG_DIR, find_config, load_sim_config

        assert find_config(args.config).parent == CONFIG_DIR, f"{args.config!r} must be a shipped simulator profile"
        load_sim_config(args.config, args.overrides)


def test_a_renamed_flag_would_be_caught(tmp_path):
    # the check above can fail: an argv with a flag the parser does not know raises, it does not run
    parser, _, _ = cli.command_parser("run")
    with pytest.raises(cli.UsageError, match="unrecognized arguments: --output"):
        parser.parse_args(["joint_quick", "--output", str(tmp_path)])


@pytest.mark.parametrize("profile", sorted(reproduce.PROFILES))
def test_the_reproduce_command_accepts_every_profile(profile):
    parser, _, _ = cli.command_parser("reproduce")
    assert parser.parse_args(["--profile", profile]).profile == profile
