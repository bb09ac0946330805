"""``alys-fast tx``: decode and validate through the real entry point, errors without tracebacks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from alys_fast.cli import main
from tests.validation.vectors import tx_vectors

CASES = tx_vectors()
VALID = [c for c in CASES if c["valid"]]
INVALID = [c for c in CASES if not c["valid"] and c["fork"] == "Cancun"]


def test_decode_prints_fields_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    case = VALID[0]
    assert main(["tx", "decode", case["txbytes"]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hash"] == case["hash"]
    assert out["sender"] == case["sender"]
    assert out["intrinsic_gas"] == int(case["intrinsicGas"], 16)
    assert out["type"] == 0 and "raw" not in out


def test_decode_uses_the_chain_id_the_transaction_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    eip155 = next(c for c in VALID if c["name"].startswith("V_equals37"))
    assert main(["tx", "decode", eip155["txbytes"].removeprefix("0x")]) == 0
    assert json.loads(capsys.readouterr().out)["chain_id"] == 1
    assert main(["tx", "decode", "--chain-id", "5", eip155["txbytes"]]) == 2
    assert "invalid chain id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0xzz", "not a hex string: '0xzz'"),
        ("0x", "invalid transaction: malformed RLP"),
        ("0x05c0", "transaction type not supported (type=5)"),
    ],
)
def test_decode_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], raw: str, message: str
) -> None:
    assert main(["tx", "decode", raw]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_validate_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [VALID[0]["txbytes"], "", INVALID[0]["txbytes"], "not hex", VALID[1]["txbytes"]]
    path = tmp_path / "txs.txt"
    path.write_text("\n".join(lines) + "\n")
    assert main(["tx", "validate", "--chain-id", "1", str(path)]) == 1
    verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(v["line"], v["ok"]) for v in verdicts] == [
        (1, True),
        (3, False),
        (4, False),
        (5, True),
    ]
    assert verdicts[0]["hash"] == VALID[0]["hash"]
    assert verdicts[3]["sender"] == VALID[1]["sender"]
    assert verdicts[1]["error"] == "invalid recipient"
    assert verdicts[2]["error"] == "not a hex string"


def test_validate_stdin_all_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(c["txbytes"] for c in VALID)))
    assert main(["tx", "validate", "--chain-id", "1"]) == 0
    verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [v["hash"] for v in verdicts] == [c["hash"] for c in VALID]


def test_validate_empty_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \n"))
    assert main(["tx", "validate", "--chain-id", "1", "-"]) == 2
    assert "no transactions in -" in capsys.readouterr().err


def test_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tx", "validate", "--chain-id", "1", "/nonexistent/txs"]) == 2
    assert "cannot read /nonexistent/txs" in capsys.readouterr().err


@pytest.mark.parametrize("chain_id", ["0", "x", str(2**63)])
def test_validate_rejects_bad_chain_ids(chain_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tx", "validate", "--chain-id", chain_id])
    assert exited.value.code == 2
    assert "--chain-id" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["tx"], ["tx", "decode"], ["tx", "validate"]])
def test_missing_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: alys-fast tx" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["tx"], ["tx", "decode"], ["tx", "validate"]])
def test_help_on_every_level(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    assert "usage: alys-fast " + " ".join(argv) in capsys.readouterr().out
