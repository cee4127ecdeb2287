"""The README's two quick-start commands exist, and CI runs exactly the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_quickstart_has_two_make_commands_that_exist():
    cmds = _quickstart_commands()
    assert cmds == ["make reproduce", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for cmd in cmds:
        target = cmd.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), target
        # each target depends on the install stamp, so it works from a fresh clone
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.M), target


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    run_lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")
                 and not ln.startswith(("set ", "cd "))]
    assert run_lines == [_quickstart_commands()[1]]
