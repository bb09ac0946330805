"""The command line: version, the declared tree, the demo, and errors without tracebacks."""

from __future__ import annotations

import pytest

from alys_fast import __version__
from alys_fast.cli import main
from alys_fast.system.tree import SUPERVISORS, TREE


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"alys-fast {__version__}"


def test_tree_lists_every_declared_row(capsys):
    assert main(["system", "tree"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alys (ONE_FOR_ALL)")
    for sup, strategy in SUPERVISORS.items():
        assert f"{sup} ({strategy.name})" in out
    for row in TREE:
        assert row.name in out and type(row.policy).__name__ in out


def test_demo_accounts_for_every_message(capsys):
    assert main(["system", "--demo", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    counts = dict(part.split("=") for part in last.split())
    assert int(counts["sent"]) == int(counts["handled"]) + int(counts["dead_letters"])
    assert int(counts["restarts"]) == int(counts["dead_letters"]) > 0


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
