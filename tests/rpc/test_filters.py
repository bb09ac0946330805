"""The filter core without actors: log criteria and matching, live queries, a block's logs,
the filter registry (getFilterChanges semantics, expiry on a fake clock, bounds), and the
server's subscriptions with criteria (the ``logs`` kind as the node serves it)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from websockets.asyncio.client import connect

from alys_fast.rpc import INVALID_PARAMS, SERVER_ERROR, InvalidParams, RpcError, ServerError
from alys_fast.rpc.filters import (
    BlockLogs,
    FilterKind,
    FilterNotFound,
    FilterRegistry,
    LogCriteria,
    LogQuery,
)
from alys_fast.validation.receipts import Log, Receipt
from tests.rpc.helpers import LOOPS, call, run_on, serving

TOKEN, OTHER = b"\x11" * 20, b"\x22" * 20
TRANSFER, APPROVAL = b"\xaa" * 32, b"\xbb" * 32
ALICE, BOB = b"\x00" * 12 + b"\x01" * 20, b"\x00" * 12 + b"\x02" * 20


def h(value: bytes) -> str:
    return "0x" + value.hex()


def receipt(tx: int, *logs: Log) -> Receipt:
    return Receipt(tx_hash=bytes([tx]) * 32, tx_type=2, status=1, gas_used=21_000,
                   cumulative_gas_used=21_000 * (tx + 1), effective_gas_price=1, logs=logs)


TRANSFER_TO_BOB = Log(TOKEN, (TRANSFER, ALICE, BOB), b"\x01")
APPROVAL_OF_BOB = Log(TOKEN, (APPROVAL, ALICE, BOB), b"\x02")
OTHER_TRANSFER = Log(OTHER, (TRANSFER, BOB, ALICE), b"\x03")
ANONYMOUS = Log(OTHER, (), b"\x04")


def block(number: int = 5, *receipts: Receipt) -> BlockLogs:
    if not receipts:
        receipts = (receipt(0, TRANSFER_TO_BOB, APPROVAL_OF_BOB), receipt(1),
                    receipt(2, OTHER_TRANSFER, ANONYMOUS))
    return BlockLogs(bytes([number]) * 32, number, receipts)


def criteria(**query: object) -> LogCriteria:
    return LogCriteria.parse(query)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- criteria and matching -----------------------------------------------------------------------


def test_addresses_one_or_many_or_any() -> None:
    assert criteria().matches(ANONYMOUS)
    assert criteria(address=None).matches(ANONYMOUS)
    assert criteria(address=h(TOKEN)).matches(TRANSFER_TO_BOB)
    assert not criteria(address=h(TOKEN)).matches(OTHER_TRANSFER)
    both = criteria(address=[h(TOKEN), h(OTHER).upper().replace("0X", "0x")])
    assert both.matches(TRANSFER_TO_BOB) and both.matches(OTHER_TRANSFER)
    assert criteria(address=[]).matches(OTHER_TRANSFER)  # an empty list: any, as geth


def test_topics_by_position() -> None:
    assert criteria(topics=[h(TRANSFER)]).matches(TRANSFER_TO_BOB)
    assert not criteria(topics=[h(TRANSFER)]).matches(APPROVAL_OF_BOB)
    to_bob = criteria(topics=[None, None, h(BOB)])
    assert to_bob.matches(TRANSFER_TO_BOB) and to_bob.matches(APPROVAL_OF_BOB)
    assert not to_bob.matches(OTHER_TRANSFER)
    either = criteria(topics=[[h(TRANSFER), h(APPROVAL)], h(ALICE)])
    assert either.matches(TRANSFER_TO_BOB) and either.matches(APPROVAL_OF_BOB)
    assert not either.matches(OTHER_TRANSFER)
    # geth: an empty alternative list, or one holding null, matches anything at its position.
    assert criteria(topics=[[], h(BOB)]).matches(OTHER_TRANSFER)
    assert criteria(topics=[[h(APPROVAL), None]]).matches(OTHER_TRANSFER)
    # More positions than the log has topics: no match, even if those positions are wildcards.
    assert not criteria(topics=[None]).matches(ANONYMOUS)
    assert not criteria(topics=[None, None, None, None]).matches(TRANSFER_TO_BOB)
    assert criteria(topics=[]).matches(ANONYMOUS)


@pytest.mark.parametrize("query", [
    {"address": "0x1234"},
    {"address": [h(TOKEN), 7]},
    {"topics": "0x" + "aa" * 32},
    {"topics": [None] * 5},
    {"topics": ["0xaa"]},
    {"topics": [[h(TRANSFER)] * 1001]},
])
def test_bad_criteria_are_invalid_params(query: dict[str, object]) -> None:
    with pytest.raises(InvalidParams):
        LogCriteria.parse(query)


def test_live_queries_follow_geths_range_rules() -> None:
    assert LogQuery.parse() == LogQuery.parse({}) == LogQuery(LogCriteria(), None, None)
    assert LogQuery.parse({"fromBlock": "latest", "toBlock": "latest"}) == LogQuery()
    ranged = LogQuery.parse({"fromBlock": "0x3", "toBlock": "0x5", "address": h(TOKEN)})
    assert (ranged.from_block, ranged.to_block) == (3, 5)
    assert ranged.criteria == criteria(address=h(TOKEN))
    assert [n for n in range(8) if ranged.covers(n)] == [3, 4, 5]
    assert LogQuery.parse({"fromBlock": "earliest"}).covers(0)
    assert LogQuery.parse({"fromBlock": "0x7"}).covers(10**6)
    for bad in ({"fromBlock": "0x5", "toBlock": "0x4"}, {"toBlock": "0x4"},
                {"fromBlock": "safe"}, {"toBlock": "finalized"}):
        with pytest.raises(ServerError, match="invalid block range params"):
            LogQuery.parse(bad)
    with pytest.raises(ServerError, match="pending logs are not supported"):
        LogQuery.parse({"fromBlock": "pending"})
    with pytest.raises(InvalidParams, match="blockHash"):
        LogQuery.parse({"blockHash": "0x" + "00" * 32})
    with pytest.raises(InvalidParams, match="must be an object"):
        LogQuery.parse(["0x1"])
    with pytest.raises(InvalidParams, match="block number"):
        LogQuery.parse({"fromBlock": "0x01"})


# --- a block's logs ------------------------------------------------------------------------------


def test_block_logs_count_log_index_across_the_block_and_share_json() -> None:
    logs = block(5)
    everything = logs.matching(LogCriteria())
    assert [x["logIndex"] for x in everything] == ["0x0", "0x1", "0x2", "0x3"]
    assert [x["transactionIndex"] for x in everything] == ["0x0", "0x0", "0x2", "0x2"]
    first = everything[0]
    assert first == {
        "address": h(TOKEN), "topics": [h(TRANSFER), h(ALICE), h(BOB)], "data": "0x01",
        "blockHash": h(b"\x05" * 32), "blockNumber": "0x5",
        "transactionHash": h(b"\x00" * 32), "transactionIndex": "0x0", "logIndex": "0x0",
        "removed": False,
    }
    transfers = logs.matching(criteria(topics=[h(TRANSFER)]))
    assert [x["logIndex"] for x in transfers] == ["0x0", "0x2"]
    assert transfers[0] is first  # built once, shared by every query that wants it


def test_notifications_one_per_log_in_block_order_with_the_ids_that_want_it() -> None:
    subscriptions = {
        "token": LogQuery(criteria(address=h(TOKEN))),
        "transfers": LogQuery(criteria(topics=[h(TRANSFER)])),
        "later": LogQuery(LogCriteria(), from_block=6),
        "nothing": LogQuery(criteria(address=h(b"\x99" * 20))),
    }
    notes = [(x["logIndex"], sids) for x, sids in block(5).notifications(subscriptions)]
    assert notes == [("0x0", ["token", "transfers"]), ("0x1", ["token"]),
                     ("0x2", ["transfers"])]
    assert list(block(5).notifications({})) == []


# --- the registry --------------------------------------------------------------------------------


def test_ids_are_random_geth_quantities() -> None:
    registry = FilterRegistry()
    ids = {registry.install(FilterKind.BLOCKS) for _ in range(200)}
    assert len(ids) == 200 == len(registry)
    for fid in ids:
        assert fid.startswith("0x") and 3 <= len(fid) <= 34
        assert fid == hex(int(fid, 16))  # no leading zeros


def test_get_filter_changes_returns_what_arrived_since_the_last_poll() -> None:
    registry = FilterRegistry()
    blocks = registry.install(FilterKind.BLOCKS)
    pending = registry.install(FilterKind.PENDING)
    transfers = registry.install(FilterKind.LOGS, LogQuery(criteria(topics=[h(TRANSFER)])))
    ranged = registry.install(FilterKind.LOGS, LogQuery(LogCriteria(), from_block=6))
    assert registry.changes(blocks) == registry.changes(transfers) == []
    registry.add_pending([b"\x01" * 32, b"\x02" * 32])
    registry.add_block(block(5))
    registry.add_block(block(6, receipt(0, APPROVAL_OF_BOB)))
    registry.add_pending([b"\x03" * 32])
    assert registry.changes(blocks) == [h(b"\x05" * 32), h(b"\x06" * 32)]
    assert registry.changes(pending) == [h(b"\x01" * 32), h(b"\x02" * 32), h(b"\x03" * 32)]
    assert [(x["blockNumber"], x["logIndex"]) for x in registry.changes(transfers)] == [
        ("0x5", "0x0"), ("0x5", "0x2")]
    assert [(x["blockNumber"], x["topics"][0]) for x in registry.changes(ranged)] == [
        ("0x6", h(APPROVAL))]
    for fid in (blocks, pending, transfers, ranged):
        assert registry.changes(fid) == []  # drained by the poll


def test_unknown_ids_and_uninstall() -> None:
    registry = FilterRegistry()
    with pytest.raises(FilterNotFound) as missing:
        registry.changes("0x1234")
    assert (missing.value.code, missing.value.message) == (SERVER_ERROR, "filter not found")
    with pytest.raises(InvalidParams):
        registry.changes(1234)
    blocks = registry.install(FilterKind.BLOCKS)
    logs = registry.install(FilterKind.LOGS, LogQuery())
    assert registry.log_query(logs) == LogQuery()
    with pytest.raises(FilterNotFound):  # eth_getFilterLogs is for log filters only
        registry.log_query(blocks)
    assert registry.uninstall(blocks) is True
    assert registry.uninstall(blocks) is False
    with pytest.raises(FilterNotFound):
        registry.changes(blocks)
    assert not registry.wants(FilterKind.BLOCKS) and registry.wants(FilterKind.LOGS)
    with pytest.raises(ValueError):
        registry.install(FilterKind.LOGS)
    with pytest.raises(ValueError):
        registry.install(FilterKind.BLOCKS, LogQuery())


def test_idle_filters_expire_and_polling_keeps_them() -> None:
    clock = Clock()
    registry = FilterRegistry(clock=clock)
    assert registry.timeout == 300.0  # geth's filterTimeout
    polled = registry.install(FilterKind.BLOCKS)
    idle = registry.install(FilterKind.PENDING)
    queried = registry.install(FilterKind.LOGS, LogQuery())
    clock.now += 200
    registry.changes(polled)
    registry.log_query(queried)  # not a poll, as in geth
    clock.now += 100.5
    # Past the timeout: gone on access even before a sweep, and no longer buffering.
    with pytest.raises(FilterNotFound):
        registry.changes(idle)
    with pytest.raises(FilterNotFound):
        registry.log_query(queried)
    assert registry.changes(polled) == []
    assert len(registry) == 1
    clock.now += 300.5
    assert registry.uninstall(polled) is False  # expired: as good as gone
    assert len(registry) == 0


def test_sweeping_frees_idle_filters_in_poll_order() -> None:
    clock = Clock()
    registry = FilterRegistry(clock=clock, timeout=10)
    first = registry.install(FilterKind.BLOCKS)
    clock.now += 6
    second = registry.install(FilterKind.BLOCKS)
    clock.now += 3
    registry.changes(first)  # polled: now the most recent
    clock.now += 8
    assert registry.sweep() == 1  # second: 11 s idle; first: 8 s
    with pytest.raises(FilterNotFound):
        registry.changes(second)
    clock.now += 11
    registry.add_block(block(5))  # feeding sweeps too
    assert len(registry) == 0 and not registry.wants(FilterKind.BLOCKS)


def test_the_number_of_filters_is_bounded_and_expired_ones_make_room() -> None:
    clock = Clock()
    registry = FilterRegistry(clock=clock, max_filters=3)
    ids = [registry.install(FilterKind.BLOCKS) for _ in range(3)]
    with pytest.raises(ServerError, match=r"too many filters installed \(limit 3\)"):
        registry.install(FilterKind.PENDING)
    registry.uninstall(ids[0])
    registry.install(FilterKind.PENDING)
    clock.now += 301
    for _ in range(3):
        registry.install(FilterKind.LOGS, LogQuery())
    assert len(registry) == 3


def test_buffered_changes_are_bounded_dropping_the_oldest() -> None:
    registry = FilterRegistry(max_changes=3)
    pending = registry.install(FilterKind.PENDING)
    blocks = registry.install(FilterKind.BLOCKS)
    logs = registry.install(FilterKind.LOGS, LogQuery())
    registry.add_pending([bytes([i]) * 32 for i in range(5)])
    for number in range(1, 6):
        registry.add_block(block(number, receipt(0, TRANSFER_TO_BOB)))
    assert registry.changes(pending) == [h(bytes([i]) * 32) for i in (2, 3, 4)]
    assert registry.changes(blocks) == [h(bytes([n]) * 32) for n in (3, 4, 5)]
    assert [x["blockNumber"] for x in registry.changes(logs)] == ["0x3", "0x4", "0x5"]
    registry.add_pending([b"\x09" * 32])
    assert registry.changes(pending) == [h(b"\x09" * 32)]


def test_nothing_is_built_for_nobody() -> None:
    registry = FilterRegistry()
    logs = block(5)
    registry.add_block(logs)
    registry.add_pending([b"\x01" * 32])
    assert "entries" not in vars(logs)  # no filter: the block's logs were never even listed


# --- subscriptions with criteria on the server ---------------------------------------------------


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return request.param


async def rpc(ws, payload):
    await ws.send(msgspec.json.encode(payload).decode())
    async with asyncio.timeout(3):
        return msgspec.json.decode(await ws.recv())


def test_logs_subscriptions_keep_their_criteria(loop: str) -> None:
    async def main() -> None:
        async with serving(subscription_criteria={"logs": LogQuery.parse}) as server, \
                connect(server.ws_url) as ws:
            token = (await rpc(ws, call("eth_subscribe", "logs", {"address": h(TOKEN)})))
            every = (await rpc(ws, call("eth_subscribe", "logs")))["result"]
            token = token["result"]
            bad = await rpc(ws, call("eth_subscribe", "logs", {"topics": "0x12"}))
            assert bad["error"]["code"] == INVALID_PARAMS
            pending = await rpc(ws, call("eth_subscribe", "logs", {"fromBlock": "pending"}))
            assert pending["error"] == {"code": SERVER_ERROR,
                                        "message": "pending logs are not supported"}
            two = await rpc(ws, call("eth_subscribe", "logs", {}, {}))
            assert two["error"]["code"] == INVALID_PARAMS
            plain = await rpc(ws, call("eth_subscribe", "newHeads", {}))
            assert plain["error"]["code"] == INVALID_PARAMS
            live = server.subscriptions("logs")
            assert dict(live) == {token: LogQuery(criteria(address=h(TOKEN))), every: LogQuery()}
            with pytest.raises(ValueError):
                server.subscriptions("newHeads")

            sent = [(payload["logIndex"], sorted(sids))
                    for payload, sids in block(5).notifications(live)]
            assert sent == [("0x0", sorted([token, every])), ("0x1", sorted([token, every])),
                            ("0x2", [every]), ("0x3", [every])]
            for payload, sids in block(5).notifications(live):
                server.publish("logs", payload, to=sids)
            got = []
            for _ in range(6):
                async with asyncio.timeout(3):
                    note = msgspec.json.decode(await ws.recv())
                got.append((note["params"]["subscription"], note["params"]["result"]["logIndex"]))
            assert sorted(x for x in got if x[0] == token) == [(token, "0x0"), (token, "0x1")]
            assert [x[1] for x in got if x[0] == every] == ["0x0", "0x1", "0x2", "0x3"]

            assert server.publish("logs", {"x": 1}, to=["0xunknown"]) == 0
            assert (await rpc(ws, call("eth_unsubscribe", token)))["result"] is True
            assert list(server.subscriptions("logs")) == [every]
        await asyncio.sleep(0.05)
        assert dict(server.subscriptions("logs")) == {}  # dropped with the socket

    run_on(loop, main())


def test_a_parser_error_is_the_clients_error() -> None:
    def strict(options: object) -> object:
        raise RpcError(-32602, "no")

    async def main() -> None:
        async with serving(subscription_criteria={"picky": strict}) as server, \
                connect(server.ws_url) as ws:
            answer = await rpc(ws, call("eth_subscribe", "picky", {}))
            assert answer["error"] == {"code": -32602, "message": "no"}
            assert not server.has_subscribers("picky")

    run_on("asyncio", main())
