"""``alys-fast keys new``: make a block-signing key for an authority.

The key is written as hex (as ``authority_key_file`` reads it), to a file created with mode
0600 that must not exist yet: an authority's key is never overwritten by mistake. The printed
compressed public key is what a chain spec lists under ``authorities``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from coincurve import PrivateKey

from alys_fast.rpc.formats import checksum_address
from alys_fast.validation.blocks import address_of


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="authority keys: make a new one")
    inner = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    new = inner.add_parser(
        "new", help="write a new authority key (hex, mode 0600) and print its address")
    new.add_argument("--out", type=Path, default=Path("authority.key"),
                     help="the key file to create; never overwritten (default ./authority.key)")
    new.set_defaults(handler=_new)


def write_new_key(path: Path) -> PrivateKey:
    """A fresh secp256k1 key, written to ``path`` (created, mode 0600); raises
    ``FileExistsError`` if something is already there."""
    key = PrivateKey()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("0x" + key.secret.hex() + "\n")
    return key


def _new(args: argparse.Namespace) -> int:
    from alys_fast.cli import CliError

    try:
        key = write_new_key(args.out)
    except FileExistsError:
        raise CliError(f"{args.out} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"address      {checksum_address(address_of(key.secret))}")
    print(f"public key   0x{key.public_key.format(compressed=True).hex()}  (a chain spec's "
          f"authorities entry)")
    print(f"key file     {args.out}")
    return 0
