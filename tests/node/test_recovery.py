"""Batched eth_sendRawTransaction goes through the recovery processes and answers exactly as
the in-process path does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from eth_account import Account

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from alys_fast.validation import InvalidTransaction, recover_transaction, with_sender
from alys_fast.validation.actor import Recover, RecoveryActor, Refusal
from tests.node.harness import ThreadNode, rpc, running_node

KEY = DEV_ACCOUNTS[6][1]
TO = DEV_ACCOUNTS[8][0]


def signed(nonce: int, chain_id: int = DEV_CHAIN_ID) -> bytes:
    tx = {"to": TO, "value": 1, "nonce": nonce, "gas": 21_000, "chainId": chain_id,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    return bytes(Account.sign_transaction(tx, KEY).raw_transaction)


def bad_signature(raw: bytes) -> bytes:
    return raw[:-1] + b"\x00"  # s = ...00: another (or no) signer


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    with running_node(Path(tmp_path_factory.mktemp("recovery")) / "d") as running:
        yield running


def post(url: str, body: list) -> list:
    import urllib.request

    request = urllib.request.Request(url, msgspec.json.encode(body),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return msgspec.json.decode(response.read())


def test_recovery_actor_answers_senders_and_refusals() -> None:
    actor = RecoveryActor(DEV_CHAIN_ID)
    good, wrong_chain = signed(0), signed(0, chain_id=1)
    answers = actor.receive(Recover([good, wrong_chain, b"\x01\x02"]))
    assert answers[0] == recover_transaction(good, DEV_CHAIN_ID).sender
    assert with_sender(good, answers[0], DEV_CHAIN_ID) == recover_transaction(good, DEV_CHAIN_ID)
    for raw, answer in zip((wrong_chain, b"\x01\x02"), answers[1:], strict=True):
        assert isinstance(answer, Refusal)
        with pytest.raises(InvalidTransaction) as info:
            recover_transaction(raw, DEV_CHAIN_ID)
        assert str(answer.error()) == str(info.value)
    # What crosses the process boundary decodes back to the same answers.
    wire = msgspec.msgpack.encode(answers)
    assert msgspec.msgpack.decode(wire, type=RecoveryActor.Reply) == answers


def test_a_large_batch_is_answered_like_single_calls(node: ThreadNode) -> None:
    assert node.node.system is not None
    assert node.node.system.node("rpc/recovery-0").alive
    raws = [signed(n) for n in range(20)]
    extra = [signed(0, chain_id=1), bad_signature(signed(20)), raws[0]]
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
              "params": ["0x" + raw.hex()]} for i, raw in enumerate(raws + extra)]
    answers = post(node.url, batch)
    assert [a["id"] for a in answers] == list(range(len(batch)))
    hashes = [a["result"] for a in answers[:20]]
    assert hashes == ["0x" + recover_transaction(r, DEV_CHAIN_ID).hash.hex() for r in raws]
    wrong, bad, again = (a["error"] for a in answers[20:])
    assert wrong["message"] == "invalid sender: invalid chain id for signer: have 1 want 121212"
    assert again["message"].startswith("already known")
    # The tampered one: whatever the single-call path says about the same bytes.
    single = rpc_error(node.url, extra[1])
    assert bad["message"] == single
    number = rpc(node.url, "eth_getTransactionCount", DEV_ACCOUNTS[6][0], "pending")
    assert int(number, 16) == 20


def rpc_error(url: str, raw: bytes) -> str:
    try:
        rpc(url, "eth_sendRawTransaction", "0x" + raw.hex())
    except RuntimeError as exc:
        return exc.args[0]["message"]
    raise AssertionError("the tampered transaction was accepted")
