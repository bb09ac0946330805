"""Secrets kept in files, in the form geth reads them: 32 random bytes as 64 hex digits.

The node's RPC JWT secret, the Engine API secret shared with geth (``--authrpc.jwtsecret``) and
geth's p2p ``--nodekey`` are each made once, with mode 0600 and never overwritten, then read back
on every start: one function serves them all, at the bottom of the import layers.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class KeyFileError(ValueError):
    """A secret file that cannot be made or used; the message names the file and why."""


def hex_secret(path: Path, what: str) -> bytes:
    """The 32-byte secret in ``path`` (hex, ``0x`` optional); if there is no file, a new random
    one is written there first (mode 0600, its directory made). ``what`` names it in errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise KeyFileError(f"{what} {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{what} {path}: {getattr(exc, 'strerror', None) or 'not text'}") \
            from None
    try:
        secret = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise KeyFileError(f"{what} {path}: want 32 bytes as 64 hex digits")
    return secret
