"""``alys-fast keys new``: make a block-signing key for an authority; ``keys api`` and
``keys jwt``: credentials for the JSON-RPC port (:mod:`alys_fast.rpc.auth`).

An authority key is a BLS12-381 secret (Alys's ``--aura-secret-key``: 32 bytes, big-endian),
written as hex (as ``authority_key_file`` reads it) to a file created with mode 0600 that must
not exist yet: an authority's key is never overwritten by mistake. The printed 48-byte public
key is what a chain spec lists under ``authorities``.

``keys api`` prints a new API key once, with the ``[[rpc.api_keys]]`` stanza that holds its
SHA-256; ``keys jwt`` prints a token signed with a node's JWT secret (valid for a minute
around its issue time, as the Engine API's), for curl and scripts. The JWT secret itself is
:func:`load_jwt_secret`'s: 32 random bytes as hex, made on a node's first start as geth makes
its ``jwtsecret``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jwt

from alys_fast.config import ConfigError
from alys_fast.consensus import SecretKey
from alys_fast.keyfiles import KeyFileError, hex_secret
from alys_fast.rpc.auth import new_api_key

JWT_SECRET_FILE = "jwtsecret"  # in the data directory, unless the config names another


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="authority keys: make a new one")
    inner = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    new = inner.add_parser(
        "new", help="write a new BLS authority key (hex, mode 0600) and print its public key")
    new.add_argument("--out", type=Path, default=Path("authority.key"),
                     help="the key file to create; never overwritten (default ./authority.key)")
    new.set_defaults(handler=_new)
    api = inner.add_parser(
        "api", help="make an API key for the JSON-RPC port; prints it once and its config entry")
    api.add_argument("--id", required=True, help="the key's name in the config and audit log")
    api.add_argument("--namespaces", required=True, metavar="NAMES",
                     help="comma-separated namespaces the key opens, e.g. admin,debug; * for all")
    api.set_defaults(handler=_api)
    token = inner.add_parser(
        "jwt", help="print a JWT (HS256, issued now) signed with a node's JWT secret")
    token.add_argument("--secret", type=Path, required=True,
                       help="the node's JWT secret file (default place: <data dir>/jwtsecret)")
    token.set_defaults(handler=_jwt)


def write_new_key(path: Path) -> SecretKey:
    """A fresh BLS secret key, written to ``path`` (created, mode 0600); raises
    ``FileExistsError`` if something is already there."""
    key = SecretKey.random()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("0x" + key.to_bytes().hex() + "\n")
    return key


def load_jwt_secret(path: Path) -> bytes:
    """The node's 32-byte JWT secret in ``path``, made there first if there is none (mode
    0600). ConfigError names a file it cannot use."""
    try:
        return hex_secret(path, "JWT secret")
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None


def _new(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    try:
        key = write_new_key(args.out)
    except FileExistsError:
        raise CliError(f"{args.out} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"public key   0x{key.public_key().to_bytes().hex()}  (a chain spec's "
          f"authorities entry)")
    print(f"key file     {args.out}")
    return 0


def _api(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    try:
        key, record = new_api_key(args.id, (n.strip() for n in args.namespaces.split(",")))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    namespaces = ", ".join(f'"{name}"' for name in record.namespaces)
    print(f"API key      {key}")
    print("             shown once: the node keeps only its SHA-256; clients send it as")
    print("             Authorization: Bearer <key>")
    print()
    print("add to the node config:")
    print()
    print("[[rpc.api_keys]]")
    print(f'id = "{record.id}"')
    print(f'sha256 = "{record.sha256}"')
    print(f"namespaces = [{namespaces}]")
    return 0


def _jwt(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    if not args.secret.is_file():
        raise CliError(f"{args.secret}: no such file (a node writes it on its first start)")
    try:
        secret = load_jwt_secret(args.secret)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    print(jwt.encode({"iat": int(time.time())}, secret, algorithm="HS256"))
    return 0
