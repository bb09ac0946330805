"""The access policy's core: each way in (JWT, API key), each way out (401, -32601, -32001),
the dispatcher's namespace gate, and the audit log's lines and rotation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest

from alys_fast.rpc.auth import (
    JWT_MAX_SKEW,
    UNAUTHORIZED,
    ApiKey,
    AuditLog,
    Authenticator,
    AuthError,
    Grant,
    new_api_key,
)
from alys_fast.rpc.dispatch import METHOD_NOT_FOUND, Dispatcher, Methods, ServerError

NOW = 1_700_000_000.0
SECRET = bytes(range(32))
OPS_KEY = "afk_" + "11" * 32
READER_KEY = "afk_" + "22" * 32
PEER = "127.0.0.7"
REPRS = ("b'", 'b"', "None", "{'", "\\x")


def api_key(key_id: str, key: str, *namespaces: str) -> ApiKey:
    return ApiKey(key_id, hashlib.sha256(key.encode()).hexdigest(), namespaces)


def token(claims: dict[str, Any] | None = None, secret: bytes = SECRET,
          algorithm: str = "HS256") -> bytes:
    payload = {"iat": int(NOW)} if claims is None else claims
    return b"Bearer " + jwt.encode(payload, secret, algorithm=algorithm).encode()


def bearer(key: str) -> bytes:
    return b"Bearer " + key.encode()


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def access(audit_path: Path) -> Iterator[Authenticator]:
    auth = Authenticator(
        api_keys=[api_key("ops", OPS_KEY, "admin", "debug"), api_key("reader", READER_KEY, "eth")],
        jwt_secret=SECRET, audit=AuditLog(audit_path), clock=lambda: NOW)
    yield auth
    auth.close()


def audit_lines(access: Authenticator) -> list[dict[str, Any]]:
    access.close()
    assert access.audit is not None
    return [msgspec.json.decode(line) for line in access.audit.path.read_text().splitlines()]


def refused(access: Authenticator, authorization: bytes) -> str:
    with pytest.raises(AuthError) as caught:
        access.authorize(authorization, PEER)
    assert caught.value.status == 401
    message = caught.value.message
    assert not any(r in message for r in REPRS), message
    error = msgspec.json.decode(caught.value.body())["error"]
    assert error == {"code": UNAUTHORIZED, "message": message}
    return message


# -- ways in ------------------------------------------------------------------------------------


def test_no_header_is_the_public_grant(access: Authenticator) -> None:
    grant = access.authorize(None, PEER)
    assert grant == Grant(None, PEER, frozenset({"eth", "net", "web3", "txpool", "rpc"}))
    assert grant.allows("eth_chainId") and grant.allows("rpc_modules")
    assert not grant.allows("admin_nodeInfo") and not grant.allows("debug_traceCall")


def test_a_valid_jwt_grants_every_namespace(access: Authenticator) -> None:
    grant = access.authorize(token(), PEER)
    assert grant.who == "jwt" and grant.peer == PEER and grant.namespaces is None
    assert grant.allows("admin_nodeInfo") and grant.allows("evm_mine")


@pytest.mark.parametrize("skew", [-JWT_MAX_SKEW, JWT_MAX_SKEW, -1.5])
def test_a_jwt_within_the_skew_is_taken(access: Authenticator, skew: float) -> None:
    assert access.authorize(token({"iat": NOW + skew}), PEER).who == "jwt"


def test_a_stale_jwt_is_refused(access: Authenticator) -> None:
    message = refused(access, token({"iat": int(NOW) - JWT_MAX_SKEW - 1}))
    assert message == "the JWT is stale: issued 61 s ago, more than 60 s"


def test_a_jwt_from_the_future_is_refused(access: Authenticator) -> None:
    message = refused(access, token({"iat": int(NOW) + 3600}))
    assert message == "the JWT is issued 3600 s in the future, more than 60 s"


def test_a_jwt_of_another_secret_is_refused(access: Authenticator) -> None:
    message = refused(access, token(secret=bytes(32)))
    assert message == "the JWT's signature does not match this node's secret"


@pytest.mark.parametrize("algorithm", ["none", "HS512", "HS384"])
def test_a_jwt_of_another_algorithm_is_refused(access: Authenticator, algorithm: str) -> None:
    key = None if algorithm == "none" else SECRET * 2  # long enough for HS512's taste
    assert refused(access, token(secret=key, algorithm=algorithm)) == \
        "the JWT must be signed with HS256"


def test_a_jwt_without_iat_is_refused(access: Authenticator) -> None:
    assert refused(access, token({"sub": "x"})) == "the JWT has no iat (issued-at) claim"


@pytest.mark.parametrize("iat", ["1700000000", True, [1], {"at": 1}])
def test_a_jwt_whose_iat_is_not_seconds_is_refused(access: Authenticator, iat: Any) -> None:
    assert refused(access, token({"iat": iat})) == "the JWT's iat is not a number of seconds"


def test_an_expired_jwt_is_refused(access: Authenticator) -> None:
    # exp is checked against the real clock by PyJWT: one long past is expired at any time
    assert refused(access, token({"iat": NOW, "exp": 1})) == "the JWT has expired (exp)"


@pytest.mark.parametrize("jwt_text", [b"a.b.c", b"bm90anNvbg.e30.c2ln", b"..", b"\xff.\xfe.x"])
def test_a_malformed_jwt_is_refused(access: Authenticator, jwt_text: bytes) -> None:
    assert refused(access, b"Bearer " + jwt_text) == "the JWT is malformed"


@pytest.mark.parametrize("header", [
    b"", b"Bearer", b"Bearer ", b"Basic dXNlcjpwYXNz", b"Bearer two tokens", b"Token abc",
    b"\xff\xfe",
])
def test_a_malformed_header_is_refused(access: Authenticator, header: bytes) -> None:
    assert refused(access, header) == ('the Authorization header must be "Bearer <token>", '
                                       'with a JWT or an API key as the token')


def test_the_scheme_is_case_insensitive(access: Authenticator) -> None:
    assert access.authorize(b"bearer " + OPS_KEY.encode(), PEER).who == "ops"
    assert access.authorize(b"BEARER  " + OPS_KEY.encode() + b" ", PEER).who == "ops"


def test_a_jwt_on_a_node_without_a_secret_is_refused(audit_path: Path) -> None:
    access = Authenticator(api_keys=[api_key("ops", OPS_KEY, "admin")])
    assert refused(access, token()) == "this node takes no JWT: use an API key"


def test_an_api_key_grants_its_role_and_the_public_namespaces(access: Authenticator) -> None:
    grant = access.authorize(bearer(OPS_KEY), PEER)
    assert grant.who == "ops"
    assert grant.namespaces == frozenset(
        {"admin", "debug", "eth", "net", "web3", "txpool", "rpc"})
    assert not grant.allows("evm_mine")


def test_an_unknown_api_key_is_refused(access: Authenticator) -> None:
    assert refused(access, bearer("afk_" + "33" * 32)) == "unknown API key"
    assert refused(access, bearer(OPS_KEY[:-1])) == "unknown API key"


def test_jwt_namespaces_can_be_narrowed() -> None:
    access = Authenticator(jwt_secret=SECRET, jwt_namespaces=["admin"], clock=lambda: NOW)
    grant = access.authorize(token(), PEER)
    assert grant.allows("admin_nodeInfo") and grant.allows("eth_chainId")
    assert not grant.allows("debug_traceCall")


def test_public_star_serves_everything_to_everyone() -> None:
    access = Authenticator(["*"], api_keys=[api_key("ops", OPS_KEY, "admin")])
    assert access.authorize(None, PEER).allows("debug_traceCall")
    assert access.authorize(bearer(OPS_KEY), PEER).namespaces is None


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="JWT secret is 32 bytes, got 16"):
        Authenticator(jwt_secret=bytes(16))
    with pytest.raises(ValueError, match="API keys ops and ops2 are the same key"):
        Authenticator(api_keys=[api_key("ops", OPS_KEY, "admin"),
                                api_key("ops2", OPS_KEY, "debug")])
    with pytest.raises(ValueError, match="two API keys have the id ops"):
        Authenticator(api_keys=[api_key("ops", OPS_KEY, "admin"),
                                api_key("ops", READER_KEY, "debug")])


@pytest.mark.parametrize(("key_id", "namespaces", "message"), [
    ("jwt", ["admin"], 'API key id "jwt" is reserved for JWT bearers'),
    ("has space", ["admin"], 'API key id "has space" must be 1 to 64 letters'),
    ("ops", [], "API key ops grants no namespace"),
    ("ops", ["Admin"], 'namespace "Admin" must be lowercase letters and digits'),
    ("ops", ["admin_x"], 'namespace "admin_x" must be lowercase'),
])
def test_new_api_key_refuses_what_the_config_would(key_id: str, namespaces: list[str],
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_api_key(key_id, namespaces)


def test_new_api_key_keeps_only_the_hash() -> None:
    key, record = new_api_key("ops", ["admin", "debug"])
    assert key.startswith("afk_") and len(key) == 4 + 64
    assert record.sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in msgspec.json.encode(record).decode()
    assert Authenticator(api_keys=[record]).authorize(bearer(key), PEER).who == "ops"
    assert new_api_key("ops", ["admin"])[0] != key


# -- the dispatcher's gate ----------------------------------------------------------------------


def table(access: Authenticator | None) -> Methods:
    methods = Methods({
        "eth_chainId": lambda: "0x1",
        "admin_nodeInfo": lambda: {"name": "node"},
        "debug_fail": lambda: (_ for _ in ()).throw(ServerError("trace failed")),
        "personal_sign": lambda: "0xsig",
    }, access=access)
    methods.add("eth_sendRawTransaction", lambda raw: raw,
                batch=lambda calls: [f"sent {c[0]}" for c in calls])
    return methods


def ask(dispatcher: Dispatcher, payload: Any, grant: Grant | None = None) -> Any:
    out = asyncio.run(dispatcher.handle(msgspec.json.encode(payload), grant=grant))
    return None if out is None else msgspec.json.decode(out)


def call(method: str, *params: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


def error(answer: dict[str, Any]) -> tuple[int, str]:
    return answer["error"]["code"], answer["error"]["message"]


def test_public_methods_are_served_without_credentials(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    assert ask(dispatcher, call("eth_chainId"))["result"] == "0x1"
    assert ask(dispatcher, call("eth_chainId"), access.authorize(None, PEER))["result"] == "0x1"


def test_a_method_that_credentials_open_needs_them(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    assert error(ask(dispatcher, call("admin_nodeInfo"))) == (
        UNAUTHORIZED, "unauthorized: admin_nodeInfo needs credentials with the admin namespace")
    ops = access.authorize(bearer(OPS_KEY), PEER)
    assert ask(dispatcher, call("admin_nodeInfo"), ops)["result"] == {"name": "node"}


def test_credentials_without_the_namespace_are_forbidden(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    reader = access.authorize(bearer(READER_KEY), PEER)
    assert error(ask(dispatcher, call("admin_nodeInfo"), reader)) == (
        UNAUTHORIZED,
        "forbidden: the API key reader does not grant the admin namespace, which "
        "admin_nodeInfo needs")


def test_a_namespace_no_credential_opens_is_not_available(access: Authenticator) -> None:
    """geth's answer for a namespace the port does not serve: as if the method did not exist."""
    narrow = Authenticator(api_keys=[api_key("ops", OPS_KEY, "admin")])
    dispatcher = Dispatcher(table(narrow))
    ops = narrow.authorize(bearer(OPS_KEY), PEER)
    for grant in (None, ops):
        assert error(ask(dispatcher, call("personal_sign"), grant)) == (
            METHOD_NOT_FOUND, "the method personal_sign does not exist/is not available")
    # with a JWT that opens every namespace, the same method only needs credentials
    assert error(ask(Dispatcher(table(access)), call("personal_sign")))[0] == UNAUTHORIZED


def test_unknown_methods_stay_unknown_whatever_their_namespace(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    assert error(ask(dispatcher, call("admin_peers"))) == (
        METHOD_NOT_FOUND, "the method admin_peers does not exist/is not available")


def test_a_batch_is_gated_call_by_call(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    batch = [call("eth_sendRawTransaction", "0x01", id_=1), call("admin_nodeInfo", id_=2),
             call("eth_chainId", id_=3), call("eth_sendRawTransaction", "0x02", id_=4)]
    answers = {a["id"]: a for a in ask(dispatcher, batch)}
    assert answers[1]["result"] == "sent 0x01" and answers[4]["result"] == "sent 0x02"
    assert error(answers[2])[0] == UNAUTHORIZED and answers[3]["result"] == "0x1"


def test_a_batch_form_method_outside_the_grant_is_refused_per_call() -> None:
    access = Authenticator(["net"], api_keys=[api_key("ops", OPS_KEY, "eth")])
    dispatcher = Dispatcher(table(access))
    batch = [call("eth_sendRawTransaction", "0x01", id_=1), call("eth_sendRawTransaction", "0x02",
                                                                 id_=2)]
    for answer in ask(dispatcher, batch):
        assert error(answer)[0] == UNAUTHORIZED
    ops = access.authorize(bearer(OPS_KEY), PEER)
    assert [a["result"] for a in ask(dispatcher, batch, ops)] == ["sent 0x01", "sent 0x02"]


def test_a_table_without_a_policy_serves_everyone() -> None:
    dispatcher = Dispatcher(table(None))
    stranger = Grant(None, PEER, frozenset({"eth"}))  # ignored: no policy to judge it
    assert ask(dispatcher, call("admin_nodeInfo"), stranger)["result"] == {"name": "node"}


# -- the audit log ------------------------------------------------------------------------------


def test_the_audit_log_records_calls_with_credentials_and_refusals(
        access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    ops = access.authorize(bearer(OPS_KEY), PEER)
    ask(dispatcher, call("admin_nodeInfo", id_=1), ops)
    ask(dispatcher, call("debug_fail", id_=2), ops)
    ask(dispatcher, call("eth_sendRawTransaction", "0xfeed", id_=3), ops)
    ask(dispatcher, [call("eth_sendRawTransaction", "0xbeef")], ops)
    ask(dispatcher, call("admin_nope"), ops)
    ask(dispatcher, call("admin_nodeInfo"))  # anonymous: refused
    ask(dispatcher, {"jsonrpc": "2.0", "method": "admin_nodeInfo"})  # a refused notification
    ask(dispatcher, call("eth_chainId"))  # anonymous and public: not audited
    for header in (bearer("afk_" + "33" * 32), token(secret=bytes(32)), b"Basic abc"):
        with pytest.raises(AuthError):
            access.authorize(header, "127.0.0.9")
    reader = access.authorize(bearer(READER_KEY), "127.0.0.8")
    ask(dispatcher, call("admin_nodeInfo"), reader)
    lines = audit_lines(access)
    for line in lines:
        assert line["time"].endswith("Z") and line["time"][:2] == "20"
        del line["time"]
    unauthorized = "unauthorized: admin_nodeInfo needs credentials with the admin namespace"
    assert lines == [
        {"who": "ops", "ip": PEER, "method": "admin_nodeInfo", "outcome": "ok"},
        {"who": "ops", "ip": PEER, "method": "debug_fail", "outcome": "error", "code": -32000},
        {"who": "ops", "ip": PEER, "method": "eth_sendRawTransaction", "outcome": "ok"},
        {"who": "ops", "ip": PEER, "method": "eth_sendRawTransaction", "outcome": "ok"},
        {"who": "ops", "ip": PEER, "method": "admin_nope", "outcome": "error", "code": -32601},
        {"who": "anonymous", "ip": "", "method": "admin_nodeInfo", "outcome": "refused",
         "reason": unauthorized},
        {"who": "anonymous", "ip": "", "method": "admin_nodeInfo", "outcome": "refused",
         "reason": unauthorized},
        {"who": "unknown", "ip": "127.0.0.9", "outcome": "refused",
         "reason": "unknown API key"},
        {"who": "jwt", "ip": "127.0.0.9", "outcome": "refused",
         "reason": "the JWT's signature does not match this node's secret"},
        {"who": "unknown", "ip": "127.0.0.9", "outcome": "refused",
         "reason": 'the Authorization header must be "Bearer <token>", with a JWT or an API '
                   'key as the token'},
        {"who": "reader", "ip": "127.0.0.8", "method": "admin_nodeInfo", "outcome": "refused",
         "reason": "forbidden: the API key reader does not grant the admin namespace, which "
                   "admin_nodeInfo needs"},
    ]


def test_the_audit_log_holds_no_secrets(access: Authenticator) -> None:
    dispatcher = Dispatcher(table(access))
    jwt_header = token()
    for header in (bearer(OPS_KEY), jwt_header):
        grant = access.authorize(header, PEER)
        ask(dispatcher, call("eth_sendRawTransaction", "0xc0ffee5ecre7"), grant)
        ask(dispatcher, [call("eth_sendRawTransaction", "0xc0ffee5ecre7")], grant)
    for header in (bearer(OPS_KEY[:-2]), token(secret=bytes(32)), b"Basic " + OPS_KEY.encode()):
        with pytest.raises(AuthError):
            access.authorize(header, PEER)
    audit_lines(access)
    assert access.audit is not None
    text = access.audit.path.read_text()
    assert text.count("\n") == 7
    jwt_text = jwt_header.split(b" ")[1].decode()
    for secret in (OPS_KEY, OPS_KEY[4:], OPS_KEY[:-2], jwt_text, *jwt_text.split("."),
                   "c0ffee", SECRET.hex(), hashlib.sha256(OPS_KEY.encode()).hexdigest()):
        assert secret not in text


def test_the_audit_log_rotates_within_its_bounds(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log", max_bytes=4000, backups=3)
    for n in range(400):
        audit.write("ops", PEER, f"admin_call{n}", "ok")
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    assert all((tmp_path / name).stat().st_size <= 4000 for name in files)
    # who called what and from where: only the node's user may read it, rotated files too
    assert {(tmp_path / name).stat().st_mode & 0o777 for name in files} == {0o600}
    newest = [msgspec.json.decode(line) for line in (tmp_path / "audit.log").read_text()
              .splitlines()]
    assert newest[-1]["method"] == "admin_call399"
    assert audit.dropped == 0


def test_the_audit_log_cuts_long_method_names(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    audit.write("ops", PEER, "admin_" + "x" * 500, "error", code=METHOD_NOT_FOUND)
    audit.close()
    (line,) = (tmp_path / "audit.log").read_text().splitlines()
    assert msgspec.json.decode(line)["method"] == "admin_" + "x" * 58
    audit.write("ops", PEER, "admin_late", "ok")  # after close: dropped, not raised
