"""An authority's approval lock on disk (``alys_fast.chain.federation.LockFile``)."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import pytest

from alys_fast.chain.federation import LOCK_FILE, FederatedChain, LockFile
from alys_fast.chain.genesis import genesis_header
from alys_fast.chain.spec import dev_spec
from alys_fast.consensus import Lock, SecretKey


def test_a_saved_lock_loads_back_and_replaces_the_previous(tmp_path):
    file = LockFile(tmp_path / "approval-lock")
    assert file.load() is None  # never approved
    file.save(Lock(7, 21, b"\x01" * 32))
    file.save(Lock(8, 25, b"\x02" * 32))
    assert file.load() == Lock(8, 25, b"\x02" * 32)
    assert [p.name for p in tmp_path.iterdir()] == ["approval-lock"]  # no temporary left


def test_a_lock_file_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "approval-lock"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="is 20 bytes, not a lock of 48"):
        LockFile(path).load()


def test_a_restarted_authority_takes_its_saved_lock_back(tmp_path):
    """The chain actor's fork choice starts from the lock file in the data dir."""
    secrets = [(i + 1).to_bytes(32, "big") for i in range(4)]
    authorities = tuple("0x" + SecretKey.from_bytes(s).public_key().to_bytes().hex()
                        for s in secrets)
    spec = msgspec.structs.replace(dev_spec(), authorities=authorities)
    genesis = genesis_header(spec)
    file = LockFile(tmp_path / LOCK_FILE)
    file.save(Lock(1, 6, b"\x05" * 32))
    chain = SimpleNamespace(stats={})  # the chain actor's face the driver writes stats to
    federated = FederatedChain(chain, spec, genesis, secret_key=secrets[2], syncing=False,
                               recover=None, lock_file=file)
    assert federated.consensus.lock == Lock(1, 6, b"\x05" * 32)
    assert federated.consensus.on_slot(6) == []  # slot 6 is its own: it re-proposes nothing new
    assert chain.stats["consensus"] is federated.consensus.stats  # what /metrics reads
