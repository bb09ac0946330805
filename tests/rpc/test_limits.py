"""The per-client and node-wide bookkeeping of alys_fast.rpc.limits, without sockets."""

from __future__ import annotations

from alys_fast.rpc.limits import (
    IP_CONNECTIONS,
    TOO_MANY_CONNECTIONS,
    Admission,
    ClientTable,
    Limits,
    Refusals,
    UnsentBudget,
    client_key,
)


def test_client_keys():
    assert client_key("127.0.0.2") == ("127.0.0.2", True)
    assert client_key("::ffff:10.0.0.1") == ("10.0.0.1", False)
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == ("2001:db8::/64", False)
    assert client_key("::1") == ("::/64", True)


def test_connections_per_client_then_probes_then_refusals():
    table = ClientTable(Limits(ip_connections=2, max_connections=3, reserved_connections=8))
    assert [table.connect("a", False, 0.0)[0] for _ in range(2)] == [Admission.NORMAL] * 2
    # over its own limit: probes, at most a quarter of the reserve, then refusals
    over = [table.connect("a", False, 0.0) for _ in range(3)]
    assert over == [(Admission.PROBE, IP_CONNECTIONS)] * 2 + [(Admission.REFUSED, IP_CONNECTIONS)]
    assert table.connect("b", False, 0.0) == (Admission.NORMAL, "")
    assert table.connect("c", False, 0.0) == (Admission.PROBE, TOO_MANY_CONNECTIONS)
    table.disconnect("a", Admission.NORMAL)
    assert table.connect("c", False, 0.0) == (Admission.NORMAL, "")


def test_token_bucket_loopback_exemption_and_prune():
    limits = Limits(ip_rate=10, ip_burst=3)
    table = ClientTable(limits)
    table.connect("remote", False, 0.0)
    table.connect("local", True, 0.0)
    assert [table.take("remote", 0.0) for _ in range(4)] == [True, True, True, False]
    assert table.take("remote", 0.1) and not table.take("remote", 0.1)  # 10/s: one per 0.1 s
    assert all(table.take("local", 0.0) for _ in range(100))  # loopback: not rate-limited
    strict = ClientTable(Limits(ip_rate=10, ip_burst=1, rate_limit_loopback=True))
    strict.connect("local", True, 0.0)
    assert strict.take("local", 0.0) and not strict.take("local", 0.0)

    table.disconnect("remote", Admission.NORMAL)
    table.disconnect("local", Admission.NORMAL)
    table.prune(0.15)  # the remote bucket is still spent: kept, so reconnecting won't refill it
    assert len(table) == 1
    table.connect("remote", False, 0.15)
    assert not table.take("remote", 0.15)
    table.disconnect("remote", Admission.NORMAL)
    table.prune(1.0)
    assert len(table) == 0


def test_batches_in_flight():
    table = ClientTable(Limits(ip_batches=2))
    table.connect("a", False, 0.0)
    assert [table.begin_batch("a") for _ in range(3)] == [True, True, False]
    table.end_batch("a")
    assert table.begin_batch("a")


def test_unsent_budget_sheds_the_largest_first():
    budget = UnsentBudget(100)
    sizes = {"a": 10, "b": 70, "c": 40, "d": 5}
    for key, size in sizes.items():
        budget.note(key, size)
    assert budget.total == 125 and budget.over()
    sizes["c"] = 45  # grew since noted: shed measures again
    assert budget.shed(sizes.__getitem__) == ["b"]
    assert budget.total == 60 and not budget.over()
    budget.note("a", 0)
    budget.forget("c")
    assert budget.total == 5


def test_refusals_are_listed_for_every_reason():
    refusals = Refusals()
    refusals.add(IP_CONNECTIONS, 3)
    counted = dict(refusals.items())
    assert counted[IP_CONNECTIONS] == 3 and counted[TOO_MANY_CONNECTIONS] == 0
