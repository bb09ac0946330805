"""Secrets kept in files: made once with mode 0600, never overwritten, kept private.

The node's RPC JWT secret, the Engine API secret shared with geth (``--authrpc.jwtsecret``) and
geth's p2p ``--nodekey`` are 32 random bytes as 64 hex digits, the form geth reads
(:func:`hex_secret`). Every secret file the node reads (those, its network key, an authority's
BLS key) goes through :func:`keep_private` first: a file others can read — as every file of a
fresh git clone is, git keeps no modes — is made 0600 with a warning rather than refused, so a
committed example key starts as it is and is private from then on.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


class KeyFileError(ValueError):
    """A secret file that cannot be made or used; the message names the file and why."""


def keep_private(path: Path, what: str) -> None:
    """Make ``path`` readable by its owner only if group or others may read or write it; a
    file this user cannot change so is refused (KeyFileError). A file it cannot find or stat
    is left to the reader to report."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # missing or unreachable: the reader says so
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700)
        except OSError as exc:
            raise KeyFileError(f"{what} {path} can be read by other users and its mode cannot "
                               f"be changed ({exc.strerror}): run chmod 600 {path}") from None
        log.warning("%s %s could be read by other users (mode %o): made %o", what, path, mode,
                    mode & 0o700)


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
    keep_private(path, what)
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
