"""A development chain's unlocked accounts (``alys-fast dev`` only), as anvil, hardhat and
``geth --dev`` have them: ``eth_accounts``, ``eth_requestAccounts``, ``eth_sendTransaction``,
``eth_signTransaction``, ``eth_sign``, ``personal_sign`` and ``eth_signTypedData_v4`` (also
as ``eth_signTypedData``, the name web3.py calls).

The keys are the RPC settings' ``dev_keys`` (derived from a dev mnemonic: public by design).
Signing is eth-account's, so every signature is byte for byte what a wallet holding the same key
makes. The RPC actor imports this module only for a dev chain, so ``alys-fast run`` never loads
eth-account.

:class:`TxRequest` (a transaction object checked and completed by geth's rules,
``TransactionArgs.setDefaults``) and :class:`DevAccounts` (the keys and signing) are the pure
part; :class:`AccountsApi` puts them on the RPC, asking :class:`EthApi` for the pending nonce and
the gas estimate and submitting through ``eth_sendRawTransaction``'s path.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
from eth_account import Account
from eth_account._utils.legacy_transactions import (
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount

from alys_fast.actors import ActorError
from alys_fast.chain.workflows import child_base_fee
from alys_fast.rpc.dispatch import (
    InvalidParams,
    Methods,
    RpcError,
    ServerError,
    address,
    boolean,
    data,
    quantity,
)
from alys_fast.rpc.eth import (
    SUGGESTED_TIP,
    EthApi,
    access_list,
    call_input,
    check_chain_id,
    pool_unavailable,
)
from alys_fast.rpc.formats import hexdata, transaction_json
from alys_fast.validation import InvalidTransaction, Transaction, with_sender

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]
_TYPED_DATA_MEMBERS = {"types": dict, "primaryType": str, "domain": dict, "message": dict}


class TxRequest(msgspec.Struct, frozen=True):
    """An ``eth_sendTransaction`` object as geth reads it; a None field is the node's to fill."""

    sender: bytes
    chain_id: int
    to: bytes | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    gas: int | None = None
    gas_price: int | None = None
    max_fee: int | None = None
    max_tip: int | None = None
    access_list: AccessList | None = None
    type: int | None = None

    @classmethod
    def parse(cls, tx: Any, chain_id: int) -> TxRequest:
        """Check the object's fields (hex as geth takes them); ``chainId``, if given, must be
        the node's."""
        if type(tx) is not dict:
            raise InvalidParams("the transaction must be an object")
        if tx.get("from") is None:
            raise InvalidParams('missing "from": the account to send from')
        payload = call_input(tx)

        def number(key: str, bits: int = 256) -> int | None:
            value = tx.get(key)
            return None if value is None else quantity(value, key, bits)

        check_chain_id(tx, chain_id)
        request = cls(
            sender=address(tx["from"]),
            chain_id=chain_id,
            to=None if tx.get("to") is None else address(tx["to"]),
            value=number("value") or 0,
            data=payload,
            nonce=number("nonce", 64),
            gas=number("gas", 64),
            gas_price=number("gasPrice"),
            max_fee=number("maxFeePerGas"),
            max_tip=number("maxPriorityFeePerGas"),
            access_list=(None if tx.get("accessList") is None
                         else tuple(access_list(tx["accessList"]))),
            type=number("type", 8),
        )
        if request.to is None and not request.data:
            raise ServerError("contract creation without any data provided")
        return request

    def with_fees(self, base_fee: int, tip: int) -> TxRequest:
        """The type and fees geth picks: EIP-1559 unless a gas price is given (then legacy, or
        type 1 with an access list); a missing tip is ``tip``, a missing fee cap twice
        ``base_fee`` (the next block's) plus the tip, a missing gas price ``base_fee + tip``
        (eth_gasPrice)."""
        has_1559 = self.max_fee is not None or self.max_tip is not None
        if self.gas_price is not None and has_1559:
            raise InvalidParams(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
        kind = self.type
        if kind is None:
            kind = 2 if self.gas_price is None else 0 if self.access_list is None else 1
        if kind in (0, 1):
            if has_1559:
                raise InvalidParams(f"a type {kind} transaction takes gasPrice, not "
                                    "maxFeePerGas or maxPriorityFeePerGas")
            if kind == 0 and self.access_list:
                raise InvalidParams("a legacy (type 0) transaction has no access list")
            price = base_fee + tip if self.gas_price is None else self.gas_price
            return msgspec.structs.replace(self, type=kind, gas_price=price)
        if kind != 2:
            raise InvalidParams(f"transaction type {kind} is not supported here: "
                                "eth_sendTransaction signs types 0, 1 and 2")
        if self.gas_price is not None:
            raise InvalidParams("a type 2 transaction takes maxFeePerGas and "
                                "maxPriorityFeePerGas, not gasPrice")
        max_tip = tip if self.max_tip is None else self.max_tip
        max_fee = 2 * base_fee + max_tip if self.max_fee is None else self.max_fee
        if max_fee < max_tip:
            raise ServerError(f"maxFeePerGas ({max_fee}) < maxPriorityFeePerGas ({max_tip})")
        return msgspec.structs.replace(self, type=2, max_fee=max_fee, max_tip=max_tip)

    def unsigned(self) -> dict[str, Any]:
        """eth-account's transaction dict; the type, fees, nonce and gas are filled in."""
        assert self.type is not None and self.nonce is not None and self.gas is not None
        fields: dict[str, Any] = {
            "chainId": self.chain_id, "nonce": self.nonce, "gas": self.gas,
            "value": self.value, "data": self.data,
        }
        if self.to is not None:
            fields["to"] = self.to
        if self.type == 2:
            fields["maxFeePerGas"] = self.max_fee
            fields["maxPriorityFeePerGas"] = self.max_tip
        else:
            fields["gasPrice"] = self.gas_price
        if self.type:  # eth-account: a legacy transaction has no "type"
            fields["type"] = self.type
            fields["accessList"] = [
                {"address": hexdata(a), "storageKeys": [hexdata(k) for k in keys]}
                for a, keys in self.access_list or ()
            ]
        return fields


class DevAccounts:
    """The unlocked keys by address, in the order given; signing is eth-account's. Addresses
    without a key can be impersonated (``anvil_impersonateAccount``): their transactions carry
    a placeholder signature (r = s = 1) that no key made, and are pooled with their sender
    given, never recovered from it."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._accounts: dict[bytes, LocalAccount] = {}
        for key in keys:
            account = Account.from_key(key)
            self._accounts[bytes.fromhex(account.address[2:])] = account
        self.impersonated: set[bytes] = set()
        self.impersonate_all = False  # anvil_autoImpersonateAccount

    def can_send(self, who: bytes) -> bool:
        """Whether transactions from ``who`` can be sent: a key is here or it is impersonated."""
        return who in self._accounts or self.impersonate_all or who in self.impersonated

    def addresses(self) -> list[str]:
        """The accounts, checksummed (``eth_accounts``)."""
        return [account.address for account in self._accounts.values()]

    def account(self, who: bytes) -> LocalAccount:
        """The account, or geth's error for an address the node holds no key of."""
        account = self._accounts.get(who)
        if account is None:
            raise ServerError("unknown account")
        return account

    def sign_transaction(self, request: TxRequest) -> bytes:
        """The raw signed transaction (the consensus encoding eth_sendRawTransaction takes);
        an impersonated sender's carries the placeholder signature."""
        if request.sender not in self._accounts and self.can_send(request.sender):
            unsigned = serializable_unsigned_transaction_from_dict(request.unsigned())
            v = 0 if request.type else request.chain_id * 2 + 35  # EIP-155's, y parity 0
            return encode_transaction(unsigned, (v, 1, 1))
        signed = self.account(request.sender).sign_transaction(request.unsigned())
        return bytes(signed.raw_transaction)

    def sign_message(self, who: bytes, message: bytes) -> str:
        """The EIP-191 ``personal_sign`` signature (``\\x19Ethereum Signed Message:\\n`` +
        length prefix), r‖s‖v with v 27 or 28, as geth's ``eth_sign``."""
        return self._sign(who, encode_defunct(primitive=message))

    def sign_typed_data(self, who: bytes, typed_data: Any) -> str:
        """The EIP-712 signature of ``typed_data`` (an object or its JSON text)."""
        return self._sign(who, _typed_data(typed_data))

    def _sign(self, who: bytes, message: SignableMessage) -> str:
        return hexdata(bytes(self.account(who).sign_message(message).signature))


def _typed_data(value: Any) -> SignableMessage:
    """EIP-712 typed data encoded for signing; a malformed one is the caller's error, named."""
    if type(value) is str:
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise InvalidParams(f"invalid typed data: not JSON: {exc}") from None
    if type(value) is not dict:
        raise InvalidParams("invalid typed data: must be an object or its JSON text")
    for member, kind in _TYPED_DATA_MEMBERS.items():
        if type(value.get(member)) is not kind:
            raise InvalidParams(f"invalid typed data: {member} must be "
                                f"{'a string' if kind is str else 'an object'}")
    try:
        return encode_typed_data(full_message=value)
    except KeyError as exc:
        raise InvalidParams(f"invalid typed data: {exc.args[0]} is missing") from None
    except (TypeError, AttributeError):  # a member of the wrong JSON type, met deep inside
        raise InvalidParams("invalid typed data: a member has the wrong JSON type") from None
    except Exception as exc:  # eth-account's and eth-abi's own errors, worded for users
        raise InvalidParams(f"invalid typed data: {exc}") from None


class AccountsApi:
    """The account methods over one node's :class:`EthApi` and its dev keys."""

    def __init__(self, eth: EthApi, keys: Iterable[bytes]) -> None:
        self.eth = eth
        self.accounts = DevAccounts(keys)
        # One send per sender at a time, from reading its nonce to pooling (geth's AddrLocker):
        # concurrent sends would otherwise take the same pending nonce.
        self._locks: defaultdict[bytes, asyncio.Lock] = defaultdict(asyncio.Lock)

    def register(self, methods: Methods) -> None:
        """Add the account methods to ``methods`` (replacing the plain node's empty
        ``eth_accounts``)."""
        addresses = self.accounts.addresses()
        table = {
            "eth_accounts": lambda: addresses,
            "eth_requestAccounts": lambda: addresses,
            "eth_sendTransaction": self.send_transaction,
            "eth_signTransaction": self.sign_transaction,
            "eth_sign": self.sign,
            "personal_sign": self.personal_sign,
            "eth_signTypedData_v4": self.sign_typed_data,
            # web3.py's sign_typed_data calls it so; v1's array form is refused, not misread.
            "eth_signTypedData": self.sign_typed_data,
            "anvil_impersonateAccount": self.impersonate,
            "hardhat_impersonateAccount": self.impersonate,
            "anvil_stopImpersonatingAccount": self.stop_impersonating,
            "hardhat_stopImpersonatingAccount": self.stop_impersonating,
            "anvil_autoImpersonateAccount": self.auto_impersonate,
        }
        for name, fn in table.items():
            methods.add(name, fn)

    def _request(self, tx: Any) -> TxRequest:
        request = TxRequest.parse(tx, self.eth.spec.chain_id)
        if not self.accounts.can_send(request.sender):
            raise ServerError("unknown account")
        return request

    async def _complete(self, request: TxRequest, tx: Any) -> TxRequest:
        """Fees, then gas (estimated on the object as sent) and the pool's pending nonce."""
        eth = self.eth
        request = request.with_fees(child_base_fee(eth.spec, eth.head), SUGGESTED_TIP)
        gas = request.gas
        if gas is None:
            gas = int(await eth.estimate_gas(tx), 16)
        nonce = request.nonce
        if nonce is None:
            try:
                nonce = await eth.pool.pending_nonce(request.sender)
            except ActorError as exc:
                raise pool_unavailable("eth_sendTransaction", exc) from None
        return msgspec.structs.replace(request, gas=gas, nonce=nonce)

    async def send_transaction(self, tx: Any) -> str:
        """Fill, sign and submit as ``eth_sendRawTransaction`` does: the hash, and with
        automine the receipt is there when this answers."""
        request = self._request(tx)
        async with self._locks[request.sender]:
            # The sender is known: pooled as it is (an impersonated one has no signature).
            _, pooled = await self._signed(request, tx)
            (result,) = await self.eth.submit([pooled])
        if isinstance(result, RpcError):
            raise result
        return result

    def impersonate(self, account: Any) -> bool:
        """``anvil_impersonateAccount``: send from ``account`` without its key."""
        self.accounts.impersonated.add(address(account))
        return True

    def stop_impersonating(self, account: Any) -> bool:
        self.accounts.impersonated.discard(address(account))
        return True

    def auto_impersonate(self, enabled: Any) -> bool:
        """``anvil_autoImpersonateAccount``: every address may send."""
        self.accounts.impersonate_all = boolean(enabled, "enabled")
        return True

    async def sign_transaction(self, tx: Any) -> dict[str, Any]:
        """Fill and sign without submitting: geth's ``{raw, tx}``."""
        request = self._request(tx)
        self.accounts.account(request.sender)  # a real signature needs the key
        raw, signed = await self._signed(request, tx)
        return {"raw": hexdata(raw), "tx": transaction_json(signed)}

    async def _signed(self, request: TxRequest, tx: Any) -> tuple[bytes, Transaction]:
        """The completed request signed: its raw encoding and the transaction it is."""
        raw = self.accounts.sign_transaction(await self._complete(request, tx))
        try:
            return raw, with_sender(raw, request.sender, request.chain_id)
        except InvalidTransaction as exc:
            raise ServerError(str(exc)) from None

    def sign(self, account: Any, message: Any) -> str:
        """``eth_sign(address, data)``: the EIP-191 signature, as geth's."""
        return self.accounts.sign_message(address(account), data(message, "data"))

    def personal_sign(self, message: Any, account: Any) -> str:
        """``personal_sign(data, address)``: ``eth_sign`` with the arguments swapped."""
        return self.accounts.sign_message(address(account), data(message, "data"))

    def sign_typed_data(self, account: Any, typed_data: Any) -> str:
        """``eth_signTypedData_v4(address, typedData)``: the EIP-712 signature."""
        return self.accounts.sign_typed_data(address(account), typed_data)
