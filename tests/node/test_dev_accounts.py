"""A dev chain's unlocked accounts, driven as a dapp drives anvil or hardhat: web3.py's
``eth.accounts`` and ``send_transaction``, the fields the node fills checked against geth's
rules, every signature compared byte for byte with eth-account's for the same key, the errors;
a node that is not a dev chain has none of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from web3 import Web3
from web3.providers import HTTPProvider

from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from tests.engine.contracts import artifact, calldata, creation_code, runtime_code
from tests.node.harness import ThreadNode, rpc, running_node
from tests.node.test_durability import batch
from tests.rpc.test_accounts import MAIL

GWEI = 10**9
ADDRESSES = [address for address, _ in DEV_ACCOUNTS]
KEYS = {address: key for address, key in DEV_ACCOUNTS}
STRANGER = "0x" + "11" * 20
SLOT = "0x" + "00" * 31 + "01"
ROOT = Path(__file__).resolve().parents[2]
# ethers v6 as a dapp uses it: the node's first account as a signer, a transfer waited for,
# a message and typed data signed (ethers sends eth_signTypedData_v4 the JSON text).
ETHERS_SMOKE = """
const { ethers } = require("ethers");
(async () => {
  const [url, mail] = [process.argv[1], JSON.parse(process.argv[2])];
  const provider = new ethers.JsonRpcProvider(url);
  const signer = await provider.getSigner(0);
  const to = ethers.Wallet.createRandom().address;
  const tx = await signer.sendTransaction({ to, value: 5n });
  const receipt = await tx.wait();
  const types = { Person: mail.types.Person, Mail: mail.types.Mail };
  console.log(JSON.stringify({
    from: await signer.getAddress(), hash: tx.hash, status: receipt.status,
    balance: (await provider.getBalance(to)).toString(),
    message: await signer.signMessage("hello"),
    typed: await signer.signTypedData(mail.domain, types, mail.message),
  }));
})().catch((error) => { console.error(error); process.exit(1); });
"""
METHODS = ("eth_sendTransaction", "eth_signTransaction", "eth_sign", "personal_sign",
           "eth_signTypedData_v4", "eth_signTypedData")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    keys = tuple(bytes.fromhex(key[2:]) for _, key in DEV_ACCOUNTS)
    with running_node(tmp_path_factory.mktemp("dev-accounts"), slot_ms=1000, archive=True,
                      dev_mining=DevMining(), dev_keys=keys) as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: ThreadNode) -> Web3:
    return Web3(HTTPProvider(node.url, request_kwargs={"timeout": 30}))


def error_of(url: str, method: str, *params: Any) -> dict[str, Any]:
    with pytest.raises(RuntimeError) as raised:
        rpc(url, method, *params)
    return raised.value.args[0]


def next_base_fee(url: str) -> int:
    """The base fee of the block after the head (eth_feeHistory's last entry)."""
    return int(rpc(url, "eth_feeHistory", "0x1", "latest", [])["baseFeePerGas"][-1], 16)


def eth_account_fields(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction object from the node as the dict eth-account signs."""
    fields: dict[str, Any] = {
        "chainId": int(tx["chainId"], 16), "nonce": int(tx["nonce"], 16),
        "gas": int(tx["gas"], 16), "value": int(tx["value"], 16),
        "data": bytes.fromhex(tx["input"][2:]),
    }
    if tx["to"] is not None:
        fields["to"] = Web3.to_checksum_address(tx["to"])
    kind = int(tx["type"], 16)
    if kind == 2:
        fields["maxFeePerGas"] = int(tx["maxFeePerGas"], 16)
        fields["maxPriorityFeePerGas"] = int(tx["maxPriorityFeePerGas"], 16)
    else:
        fields["gasPrice"] = int(tx["gasPrice"], 16)
    if kind:
        fields["type"] = kind
        fields["accessList"] = tx["accessList"]
    return fields


def signed_by_eth_account(tx: dict[str, Any], sender: str) -> Any:
    return Account.sign_transaction(eth_account_fields(tx), KEYS[sender])


def test_the_accounts_are_listed(w3: Web3, node: ThreadNode) -> None:
    assert w3.eth.accounts == ADDRESSES
    assert rpc(node.url, "eth_accounts") == ADDRESSES  # checksummed, in derivation order
    assert rpc(node.url, "eth_requestAccounts") == ADDRESSES


def test_send_transaction_fills_nonce_gas_and_fees_as_geth(node: ThreadNode) -> None:
    url, sender, to = node.url, ADDRESSES[0], ADDRESSES[9]
    nonce = int(rpc(url, "eth_getTransactionCount", sender, "pending"), 16)
    base_fee = next_base_fee(url)
    tip = int(rpc(url, "eth_maxPriorityFeePerGas"), 16)
    estimate = rpc(url, "eth_estimateGas", {"from": sender, "to": to, "value": "0x5"})
    balance = int(rpc(url, "eth_getBalance", to, "latest"), 16)
    number = int(rpc(url, "eth_blockNumber"), 16)

    tx_hash = rpc(url, "eth_sendTransaction", {"from": sender, "to": to, "value": "0x5"})
    receipt = rpc(url, "eth_getTransactionReceipt", tx_hash)  # automine: already there
    assert receipt["status"] == "0x1" and int(receipt["blockNumber"], 16) == number + 1
    tx = rpc(url, "eth_getTransactionByHash", tx_hash)
    assert tx["type"] == "0x2" and tx["chainId"] == hex(DEV_CHAIN_ID)
    assert tx["from"] == sender.lower() and tx["value"] == "0x5"
    assert int(tx["nonce"], 16) == nonce
    assert tx["gas"] == estimate
    assert int(tx["maxPriorityFeePerGas"], 16) == tip
    assert int(tx["maxFeePerGas"], 16) == 2 * base_fee + tip
    assert tx["accessList"] == []
    assert int(rpc(url, "eth_getBalance", to, "latest"), 16) == balance + 5
    # The signature is eth-account's for these fields and this key.
    assert "0x" + signed_by_eth_account(tx, sender).hash.hex().removeprefix("0x") == tx_hash


def test_web3_sends_a_transfer_and_deploys_a_contract(w3: Web3) -> None:
    sender, to = ADDRESSES[1], ADDRESSES[8]
    before = w3.eth.get_balance(to)
    tx_hash = w3.eth.send_transaction({"from": sender, "to": to, "value": 10**18})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt.status == 1 and receipt["from"] == sender and receipt.to == to
    assert w3.eth.get_balance(to) == before + 10**18

    supply = 10**24
    tx_hash = w3.eth.send_transaction(
        {"from": sender, "data": creation_code("Token", ["uint256"], [supply])})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt.status == 1 and receipt.contractAddress is not None
    assert w3.eth.get_code(receipt.contractAddress) == runtime_code("Token")
    token = w3.eth.contract(address=receipt.contractAddress, abi=artifact("Token")["abi"])
    assert token.functions.balanceOf(sender).call() == supply
    # A contract call sent from the unlocked account (web3 builds it, the node signs it).
    sent = token.functions.transfer(to, 7).transact({"from": sender})
    assert w3.eth.get_transaction_receipt(sent).status == 1
    assert token.functions.balanceOf(to).call() == 7


def test_a_gas_price_or_an_access_list_picks_the_type(node: ThreadNode) -> None:
    url, sender, to = node.url, ADDRESSES[2], ADDRESSES[7]
    listed = [{"address": to.lower(), "storageKeys": [SLOT]}]
    cases = [
        ({"gasPrice": hex(3 * GWEI)}, "0x0"),
        ({"gasPrice": hex(3 * GWEI), "accessList": listed}, "0x1"),
        ({"accessList": listed}, "0x2"),
        ({"type": "0x0"}, "0x0"),
    ]
    for extra, kind in cases:
        gas_price = rpc(url, "eth_gasPrice")  # next base fee + tip: a legacy default price
        tx_hash = rpc(url, "eth_sendTransaction", {"from": sender, "to": to, **extra})
        assert rpc(url, "eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
        tx = rpc(url, "eth_getTransactionByHash", tx_hash)
        assert tx["type"] == kind, extra
        if kind != "0x2":
            assert tx["gasPrice"] == extra.get("gasPrice", gas_price)
        if "accessList" in extra:
            assert tx["accessList"] == listed
        assert signed_by_eth_account(tx, sender).hash.hex().removeprefix("0x") == tx_hash[2:]


def test_given_fields_are_signed_unchanged(node: ThreadNode) -> None:
    url, sender = node.url, ADDRESSES[3]
    nonce = int(rpc(url, "eth_getTransactionCount", sender, "pending"), 16)
    fields = {"chainId": DEV_CHAIN_ID, "nonce": nonce, "to": ADDRESSES[6], "value": 3,
              "gas": 30_000, "maxFeePerGas": 40 * GWEI, "maxPriorityFeePerGas": 2 * GWEI,
              "type": 2, "data": b"\x01\x02"}
    expected = Account.sign_transaction(fields, KEYS[sender])
    tx_hash = rpc(url, "eth_sendTransaction", {
        "from": sender, "chainId": hex(DEV_CHAIN_ID), "nonce": hex(nonce), "to": ADDRESSES[6],
        "value": "0x3", "gas": hex(30_000), "maxFeePerGas": hex(40 * GWEI),
        "maxPriorityFeePerGas": hex(2 * GWEI), "type": "0x2", "input": "0x0102"})
    assert tx_hash == "0x" + expected.hash.hex().removeprefix("0x")
    assert rpc(url, "eth_getTransactionReceipt", tx_hash)["status"] == "0x1"


def test_sign_transaction_answers_raw_and_tx_without_sending(node: ThreadNode) -> None:
    url, sender = node.url, ADDRESSES[4]
    nonce = rpc(url, "eth_getTransactionCount", sender, "pending")
    signed = rpc(url, "eth_signTransaction", {"from": sender, "to": ADDRESSES[5], "value": "0x9"})
    assert set(signed) == {"raw", "tx"}
    tx = signed["tx"]
    assert tx["from"] == sender.lower() and tx["nonce"] == nonce and tx["type"] == "0x2"
    reference = signed_by_eth_account(tx, sender)
    assert signed["raw"] == "0x" + bytes(reference.raw_transaction).hex()
    assert tx["hash"] == "0x" + reference.hash.hex().removeprefix("0x")
    # Nothing was sent; the raw bytes are a transaction the node takes as they are.
    assert rpc(url, "eth_getTransactionCount", sender, "pending") == nonce
    assert rpc(url, "eth_getTransactionByHash", tx["hash"]) is None
    assert rpc(url, "eth_sendRawTransaction", signed["raw"]) == tx["hash"]
    assert rpc(url, "eth_getTransactionReceipt", tx["hash"])["status"] == "0x1"


@pytest.mark.parametrize("message", [b"hello", b"", bytes(range(200))])
def test_message_signatures_are_eth_accounts(w3: Web3, node: ThreadNode, message: bytes) -> None:
    sender = ADDRESSES[5]
    expected = "0x" + Account.sign_message(
        encode_defunct(primitive=message), KEYS[sender]).signature.hex().removeprefix("0x")
    data = "0x" + message.hex()
    assert rpc(node.url, "eth_sign", sender, data) == expected
    assert rpc(node.url, "personal_sign", data, sender) == expected
    assert w3.eth.sign(sender, data=message).to_0x_hex() == expected


def test_typed_data_signatures_are_eth_accounts(w3: Web3, node: ThreadNode) -> None:
    sender = ADDRESSES[6]
    expected = "0x" + Account.sign_message(
        encode_typed_data(full_message=MAIL), KEYS[sender]).signature.hex().removeprefix("0x")
    assert rpc(node.url, "eth_signTypedData_v4", sender, MAIL) == expected
    assert rpc(node.url, "eth_signTypedData_v4", sender, json.dumps(MAIL)) == expected
    assert w3.eth.sign_typed_data(sender, MAIL).to_0x_hex() == expected


def test_errors_are_geths_words(node: ThreadNode) -> None:
    url, sender = node.url, ADDRESSES[7]
    unknown = {"code": -32000, "message": "unknown account"}
    assert error_of(url, "eth_sendTransaction", {"from": STRANGER, "to": sender}) == unknown
    assert error_of(url, "eth_signTransaction", {"from": STRANGER, "to": sender}) == unknown
    assert error_of(url, "eth_sign", STRANGER, "0x01") == unknown
    assert error_of(url, "personal_sign", "0x01", STRANGER) == unknown
    assert error_of(url, "eth_signTypedData_v4", STRANGER, MAIL) == unknown

    def refused(params: dict[str, Any]) -> dict[str, Any]:
        return error_of(url, "eth_sendTransaction", {"from": sender, **params})

    assert refused({"chainId": "0x1", "to": sender}) == {
        "code": -32000, "message": f"chainId does not match node's (have=1, want={DEV_CHAIN_ID})"}
    assert refused({}) == {"code": -32000, "message": "contract creation without any data provided"}
    assert refused({"to": sender, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}) == {
        "code": -32000, "message": "maxFeePerGas (1) < maxPriorityFeePerGas (2)"}
    assert refused({"to": sender, "gasPrice": "0x1", "maxFeePerGas": "0x1"})["code"] == -32602
    assert refused({"to": sender, "value": 5})["code"] == -32602
    assert error_of(url, "eth_sendTransaction", {"to": sender}) == {
        "code": -32602, "message": 'missing "from": the account to send from'}
    assert error_of(url, "eth_sendTransaction")["code"] == -32602
    assert error_of(url, "eth_sign", sender, "hello")["code"] == -32602  # data must be hex
    assert error_of(url, "eth_signTypedData_v4", sender, "{")["code"] == -32602
    # A revert while estimating the gas is eth_estimateGas's error 3, with the reason.
    token = rpc(url, "eth_getTransactionReceipt", rpc(url, "eth_sendTransaction", {
        "from": sender, "data": "0x" + creation_code("Token", ["uint256"], [100]).hex()}))
    pull = calldata("Token", "transferFrom(address,address,uint256)", ADDRESSES[0], sender, 1)
    error = refused({"to": token["contractAddress"], "data": "0x" + pull.hex()})
    assert (error["code"], error["message"]) == (
        3, "execution reverted: ERC20: insufficient allowance")
    # More than the balance: the pool's refusal, as for a raw transaction.
    balance = int(rpc(url, "eth_getBalance", sender, "latest"), 16)
    error = refused({"to": ADDRESSES[0], "value": hex(balance + 1), "gas": hex(21_000)})
    assert error["code"] == -32000 and "insufficient funds" in error["message"], error


def test_concurrent_sends_from_one_account_take_consecutive_nonces(node: ThreadNode) -> None:
    url, sender = node.url, ADDRESSES[8]
    first = int(rpc(url, "eth_getTransactionCount", sender, "pending"), 16)

    def send(value: int) -> str:
        return rpc(url, "eth_sendTransaction", {"from": sender, "to": ADDRESSES[0],
                                                "value": hex(value)})

    with ThreadPoolExecutor(8) as threads:
        hashes = list(threads.map(send, range(1, 9)))
    # And a batch: its calls run in order.
    answers = batch(url, [("eth_sendTransaction", [{"from": sender, "to": ADDRESSES[0]}])] * 3)
    hashes += [answer["result"] for answer in answers]
    nonces = sorted(int(rpc(url, "eth_getTransactionByHash", h)["nonce"], 16) for h in hashes)
    assert nonces == list(range(first, first + 11))
    assert all(rpc(url, "eth_getTransactionReceipt", h)["status"] == "0x1" for h in hashes)


def test_a_node_that_is_not_a_dev_chain_has_no_accounts(tmp_path: Path) -> None:
    """As geth without a keystore: no accounts, and the signing methods do not exist (even
    with keys in its context: only a dev chain serves them)."""
    keys = (bytes.fromhex(DEV_ACCOUNTS[0][1][2:]),)
    with running_node(tmp_path / "aura", slot_ms=200, dev_keys=keys) as aura:
        assert rpc(aura.url, "eth_accounts") == []
        assert error_of(aura.url, "eth_requestAccounts")["code"] == -32601
        for method in METHODS:
            assert error_of(aura.url, method)["code"] == -32601, method


def test_ethers_signer_sends_and_signs(node: ThreadNode) -> None:
    if shutil.which("node") is None:
        pytest.skip("node (JavaScript) is not installed")
    install = subprocess.run(["bash", str(ROOT / "tools" / "install_ethers.sh")],
                             capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"ethers is unavailable: {install.stderr.strip()[-400:]}")
    done = subprocess.run(
        ["node", "-e", ETHERS_SMOKE, node.url, json.dumps(MAIL)], capture_output=True, text=True,
        timeout=60, env={**os.environ, "NODE_PATH": install.stdout.strip()},
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    sender = ADDRESSES[0]
    assert (got["from"], got["status"], got["balance"]) == (sender, 1, "5")
    assert rpc(node.url, "eth_getTransactionByHash", got["hash"])["from"] == sender.lower()
    key = KEYS[sender]
    assert got["message"] == "0x" + Account.sign_message(
        encode_defunct(text="hello"), key).signature.hex().removeprefix("0x")
    assert got["typed"] == "0x" + Account.sign_message(
        encode_typed_data(full_message=MAIL), key).signature.hex().removeprefix("0x")


def test_impersonated_accounts_send_without_their_key(w3: Web3, node: ThreadNode) -> None:
    url = node.url
    whale = Account.create().address
    rpc(url, "anvil_setBalance", whale, hex(10**18))
    receiver = Account.create().address
    sent = {"from": whale, "to": receiver, "value": hex(1000)}
    assert error_of(url, "eth_sendTransaction", sent)["message"] == "unknown account"
    assert rpc(url, "anvil_impersonateAccount", whale) is True
    tx_hash = rpc(url, "eth_sendTransaction", sent)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt.status == 1 and receipt["from"] == whale
    assert w3.eth.get_balance(receiver) == 1000
    # Served with its real sender (stored beside it, never recovered from the placeholder).
    assert w3.eth.get_transaction(tx_hash)["from"] == whale
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.transactions[receipt.transactionIndex]["from"] == whale
    legacy = rpc(url, "eth_sendTransaction", {**sent, "gasPrice": hex(10**10)})
    assert w3.eth.get_transaction_receipt(legacy).status == 1
    # No key, no real signature.
    assert error_of(url, "eth_signTransaction", sent)["message"] == "unknown account"
    assert rpc(url, "hardhat_stopImpersonatingAccount", whale) is True
    assert error_of(url, "eth_sendTransaction", sent)["message"] == "unknown account"
    rpc(url, "anvil_autoImpersonateAccount", True)
    try:
        assert w3.eth.get_transaction_receipt(rpc(url, "eth_sendTransaction", sent)).status == 1
    finally:
        rpc(url, "anvil_autoImpersonateAccount", False)
