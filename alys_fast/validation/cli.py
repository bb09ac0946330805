"""``alys-fast tx``: decode and validate raw transactions from the command line.

``tx decode HEX`` prints one transaction's fields, hash, sender and intrinsic gas as JSON.
``tx validate --chain-id N [FILE]`` reads hex transactions one per line (FILE or stdin) and
prints one JSON verdict per non-blank line, in input order; exit status 1 if any is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from alys_fast._cext import require
from alys_fast.errors import CliError
from alys_fast.validation.errors import InvalidRLP, InvalidTransaction
from alys_fast.validation.transactions import (
    MAX_CHAIN_ID,
    Fork,
    Transaction,
    recover_transaction,
    recover_transactions,
)

_rlp = require("rlp")
_FORKS = [fork.name.lower() for fork in Fork]


def _jsonable(value: Any) -> Any:
    """Bytes become 0x-hex; containers are converted recursively; ints stay exact."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def transaction_json(tx: Transaction) -> dict[str, Any]:
    """A transaction's fields for display: type first, raw bytes left out."""
    fields = msgspec.structs.asdict(tx)
    del fields["raw"]
    return {"type": tx.type, **_jsonable(fields)}


def _from_hex(text: str) -> bytes | None:
    """The bytes spelled by ``text`` (0x optional, surrounding blanks ignored), or None."""
    try:
        return bytes.fromhex(text.strip().removeprefix("0x").removeprefix("0X"))
    except ValueError:
        return None


def _chain_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= MAX_CHAIN_ID:
        raise argparse.ArgumentTypeError(f"chain id must be in 1..{MAX_CHAIN_ID}, got {value}")
    return value


def _claimed_chain_id(raw: bytes) -> int:
    """The chain id a transaction names (typed field or EIP-155 ``v``); 1 when it names none."""
    typed = raw[:1] in (b"\x01", b"\x02")
    try:
        items = _rlp.decode_list(raw[1:] if typed else raw)
        value = int.from_bytes(items[0] if typed else items[6], "big")
    except (InvalidRLP, IndexError, TypeError):
        return 1  # malformed: validation proper reports the fault
    if not typed:
        value = (value - 35) // 2 if value >= 35 else 1
    return value if 1 <= value <= MAX_CHAIN_ID else 1


def _decode(args: argparse.Namespace) -> int:
    raw = _from_hex(args.raw)
    if raw is None:
        shown = args.raw if len(args.raw) <= 40 else args.raw[:37] + "..."
        raise CliError(f"not a hex string: {shown!r}")
    chain_id = args.chain_id or _claimed_chain_id(raw)
    try:
        tx = recover_transaction(raw, chain_id, Fork[args.fork.upper()])
    except InvalidTransaction as exc:
        raise CliError(f"invalid transaction: {exc}") from None
    sys.stdout.write(msgspec.json.encode(transaction_json(tx)).decode() + "\n")
    return 0


def _read_lines(path: str | None, stdin: TextIO) -> list[tuple[int, str]]:
    if path is None or path == "-":
        text = stdin.read()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"{path} is not a text file of hex transactions") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _verdicts(lines: list[tuple[int, str]], chain_id: int, fork: Fork) -> Iterable[dict]:
    raws = [_from_hex(line) for _n, line in lines]
    results = iter(recover_transactions([r for r in raws if r is not None], chain_id, fork))
    for (n, _line), raw in zip(lines, raws, strict=True):
        if raw is None:
            yield {"line": n, "ok": False, "error": "not a hex string"}
            continue
        result = next(results)
        if isinstance(result, InvalidTransaction):
            yield {"line": n, "ok": False, "error": result.rule, "message": str(result)}
        else:
            yield {
                "line": n,
                "ok": True,
                "hash": "0x" + result.hash.hex(),
                "sender": "0x" + result.sender.hex(),
                "type": result.type,
                "nonce": result.nonce,
                "intrinsic_gas": result.intrinsic_gas,
            }


def _validate(args: argparse.Namespace) -> int:
    lines = _read_lines(args.file, sys.stdin)
    if not lines:
        raise CliError(f"no transactions in {args.file or 'standard input'}")
    all_ok = True
    for verdict in _verdicts(lines, args.chain_id, Fork[args.fork.upper()]):
        all_ok &= verdict["ok"]
        sys.stdout.write(msgspec.json.encode(verdict).decode() + "\n")
    return 0 if all_ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``tx`` command group to the top-level parser."""
    tx = sub.add_parser(
        "tx",
        help="decode and validate raw transactions",
        description="Decode and validate raw Ethereum transactions (types 0, 1 and 2).",
    )
    commands = tx.add_subparsers(dest="tx_command", metavar="COMMAND", required=True)

    decode = commands.add_parser(
        "decode",
        help="print one transaction's fields as JSON",
        description="Validate one transaction and print its fields, hash, sender and intrinsic "
        "gas as JSON. Exit status 2 if it is invalid.",
    )
    decode.add_argument("raw", metavar="HEX", help="the raw transaction as hex (0x optional)")
    decode.add_argument(
        "--chain-id",
        type=_chain_id,
        default=None,
        help="chain id to check against (default: the one the transaction names)",
    )
    decode.add_argument("--fork", choices=_FORKS, default="cancun", help="rule set (%(default)s)")
    decode.set_defaults(handler=_decode)

    validate = commands.add_parser(
        "validate",
        help="validate hex transactions, one per line",
        description="Read raw transactions as hex, one per line, and print one JSON verdict per "
        "non-blank line. Exit status 0 if all are valid, 1 if any is not.",
    )
    validate.add_argument("file", metavar="FILE", nargs="?", help="input file (default: stdin)")
    validate.add_argument("--chain-id", type=_chain_id, required=True, help="the chain's id")
    validate.add_argument("--fork", choices=_FORKS, default="cancun", help="rule set (%(default)s)")
    validate.set_defaults(handler=_validate)
