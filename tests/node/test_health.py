"""The operator's signals: ``/health`` (503 with the reasons when the head of an authority
stops or an actor is down) and the ``/metrics`` families beyond the chain's and pool's."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alys_fast import __version__
from alys_fast.actors import Directory
from alys_fast.chain.mining import DevMining
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_AUTHORITY_KEY, dev_spec
from alys_fast.metrics.stats import NodeStats
from alys_fast.paths import CHAIN, METRICS
from alys_fast.rpc.health import HealthCheck, HealthSettings, head_age, stall_after
from tests.node.harness import ThreadNode, rpc, running_node
from tests.node.test_durability import transfer, wait_for
from tests.node.test_supervision import crash

pytestmark = pytest.mark.timeout(60)

KEY = bytes.fromhex(DEV_AUTHORITY_KEY[2:])


def get(url: str) -> tuple[int, Any]:
    """Status and body of a GET (JSON decoded for /health), 503 included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, json.loads(body) if url.endswith("health") else body.decode()


def scrape(url: str) -> dict[str, list[Any]]:
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(get(url + "metrics")[1]):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


# --- the rules, without a node -------------------------------------------------------------------

def context(authority_key: bytes | None = None, **kwargs: Any) -> HealthSettings:
    return HealthSettings(dev_spec(slot_ms=200), authority_key is not None, **kwargs)


def test_when_a_still_head_is_a_stall() -> None:
    assert stall_after(context(authority_key=KEY)) == pytest.approx(0.6)  # 3 slots of 200 ms
    assert stall_after(context(authority_key=KEY, stall_slots=5)) == pytest.approx(1.0)
    assert stall_after(context()) is None  # a full node authors nothing: no head to expect
    for mode in ("auto", "off"):  # a dev chain mining on demand is still until asked
        assert stall_after(context(authority_key=KEY, dev_mining=DevMining(mode=mode))) is None
    by_interval = DevMining(mode="interval", interval_ms=500)
    assert stall_after(context(authority_key=KEY, dev_mining=by_interval)) == pytest.approx(1.5)


def test_head_age_is_from_the_slot_start_on_the_chains_clock() -> None:
    settings = context(authority_key=KEY)
    assert head_age(settings, 10, now_ms=2_450) == pytest.approx(0.45)  # slot 10 began at 2,000 ms
    assert head_age(settings, 20, now_ms=2_450) == 0.0  # a head ahead of the clock is not negative
    dev = context(authority_key=KEY, dev_mining=DevMining(offset_ms=10_000))
    assert head_age(dev, 60, now_ms=2_450) == pytest.approx(0.45)  # evm_increaseTime'd clock


def test_report_names_every_reason() -> None:
    def actor(name: str, state: str = "running", **extra: Any) -> dict[str, Any]:
        return {"name": name, "path": f"alys/x/{name}", "kind": "actor", "state": state,
                "restarts": 0, "stuck": False, "busy_for": 0.0, **extra}

    tree = {"name": "alys", "path": "alys", "kind": "supervisor", "state": "running",
            "children": [actor("fine"), actor("engine", "open"),
                         actor("slow", stuck=True, busy_for=12.34)],
            "alerts": [{"path": "alys/x/metrics", "text": "down for good"}], "dead_letters": 0}
    directory = Directory()
    directory.bind(SimpleNamespace(health=lambda: tree))
    check = HealthCheck(context(authority_key=KEY), directory, NodeStats())
    now_ms = time.time_ns() // 1_000_000
    head = SimpleNamespace(number=7, hash=b"\xab" * 32, slot=(now_ms - 5_000) // 200)
    report = check.report(head)
    assert report["healthy"] is False and report["status"] == "unhealthy"
    stalled, *actors = report["reasons"]
    assert stalled.startswith("head 7 is 5.") and "no new block for 3 slots (0.6 s)" in stalled
    assert actors == ["actor alys/x/engine is open",
                      "actor alys/x/slow is stuck: in a handler for 12.3 s",
                      "alert alys/x/metrics: down for good"]
    assert report["head_hash"] == "0x" + "ab" * 32 and 5 <= report["head_age"] < 6
    assert (report["chain_id"], report["authority"], report["actors"]) == (121212, True, tree)


# --- a running node ------------------------------------------------------------------------------

@pytest.fixture
def node(tmp_path: Path) -> Iterator[ThreadNode]:
    with running_node(tmp_path / "node", slot_ms=200, stall_slots=3) as running:
        yield running


async def stop_slots(node: ThreadNode) -> None:
    """The chain authors no more: its slot timer is cancelled and never armed again (a slot
    being handled now would arm it when it ends)."""
    chain = node.node.system.node(CHAIN).instance
    chain._schedule = chain._cancel
    chain._cancel()


def test_health_turns_503_with_the_reasons(node: ThreadNode) -> None:
    status, report = wait_for(lambda: (found := get(node.url + "health"))[0] == 200 and found,
                              10, what="a healthy node")  # a loaded machine may miss slots
    assert (report["status"], report["reasons"]) == ("ok", [])
    assert 0 <= report["head_age"] <= 0.6 and report["authority"] is True

    # The chain stops authoring (its slot timer is cancelled): the head stands still.
    node.call(stop_slots(node))
    status, report = wait_for(lambda: (found := get(node.url + "health"))[0] == 503 and found,
                              10, what="/health noticing the still head")
    assert report["healthy"] is False
    assert len(report["reasons"]) == 1 and "no new block for 3 slots" in report["reasons"][0]
    assert report["head_age"] > 0.6

    # An actor left down for good (the metrics actor's policy is Never) is a second reason.
    crash(node, METRICS)
    status, report = wait_for(lambda: len((found := get(node.url + "health"))[1]["reasons"])
                              >= 3 and found, 10, what="/health naming the dead actor")
    assert status == 503
    assert f"actor alys/{METRICS} is down" in report["reasons"]
    assert any(r.startswith(f"alert alys/{METRICS}: down for good") for r in report["reasons"])


def test_a_dev_chain_mining_on_demand_is_healthy_while_still(tmp_path: Path) -> None:
    with running_node(tmp_path / "dev", slot_ms=200, stall_slots=3,
                      dev_mining=DevMining(mode="off")) as node:
        time.sleep(1.0)  # over 3 slots without a block
        status, report = get(node.url + "health")
        assert (status, report["reasons"]) == (200, [])
        assert report["head"] == 0 and report["head_age"] > 0.6


def test_metrics_for_operators(node: ThreadNode) -> None:
    url = node.url
    rpc(url, "eth_blockNumber")
    with pytest.raises(RuntimeError):
        rpc(url, "eth_getBalance", "0x1234", "latest")

    node.call(stop_slots(node))  # so that a transaction stays pending
    rpc(url, "eth_sendRawTransaction", transfer(DEV_ACCOUNTS[5][1], 0, DEV_ACCOUNTS[6][0]))
    # The pool is sampled once a second: wait for its oldest pending transaction to age.
    samples = wait_for(lambda: (found := scrape(url))["alys_txpool_oldest_pending_seconds"][0]
                       .value > 0.5 and found, 10, what="the pending transaction's age")

    def by_method(name: str) -> dict[str, float]:
        return {s.labels["method"]: s.value for s in samples[name]}

    assert by_method("alys_rpc_requests_total")["eth_blockNumber"] >= 1
    assert by_method("alys_rpc_errors_total")["eth_getBalance"] >= 1
    assert by_method("alys_rpc_errors_total")["eth_blockNumber"] == 0
    counts = by_method("alys_rpc_request_seconds_count")
    assert counts["eth_sendRawTransaction"] >= 1
    connections = {s.labels["kind"]: s.value for s in samples["alys_rpc_connections"]}
    assert connections["http"] >= 1 and connections["websocket"] == 0
    (build,) = samples["alys_build_info"]
    assert build.labels["version"] == __version__ and build.value == 1
    assert samples["alys_chain_head_age_seconds"][0].value > 0
    # prometheus_client's process and platform collectors, on the node's registry.
    assert samples["process_resident_memory_bytes"][0].value > 0
    assert samples["process_open_fds"][0].value > 0
    assert samples["python_info"][0].labels["implementation"] == "CPython"
