"""``alys-fast devnet``: a federation of authorities and full nodes on this machine, each node
its own OS process (so one can be killed, as a machine of the federation can fail).

What it writes into the data directory (a temporary one, deleted at exit, unless
``--data-dir`` is given; run again with the same ``--data-dir`` it starts the same devnet,
chain included)::

    devnet.json              the layout: each node's role, ports and node id (what a rerun reads)
    chain.json               the chain spec: the authorities' BLS public keys in rotation order,
                             the federation's node keys (``node_keys``), the dev accounts funded
                             as ``alys-fast dev`` funds them (10,000 ETH each)
    node-<i>/node.toml       node i's config: ``alys-fast run --config node-<i>/node.toml``
    node-<i>/authority.key   its BLS secret (authorities only)
    node-<i>/data/           its chain; ``network.key`` in it is its CURVE node key
    node-<i>/node.log        its output
    node-<i>/geth/           with ``--execution geth``: the node's own geth — its genesis
                             (``el_genesis`` of chain.json), JWT secret, p2p node key, chain
                             and ``geth.log``

With ``--execution geth`` every node (full nodes too) drives its own geth over the Engine API,
as Alys's nodes do: its config's ``[execution]`` table names that geth's Engine API, JWT secret
and public RPC, so blocks it builds come from its geth and peers' blocks are imported into its
geth (``engine_newPayload``). The geths are each other's static peers (and have no others), so
a transaction sent to any node reaches every geth's pool, whichever authority builds next.
Each geth takes three more ports (Engine API, RPC, p2p): with ``--base-port``,
``base + 3n + 3i`` to ``base + 3n + 3i + 2`` for node ``i`` of ``n``.
geth needs slots of at least a second (its timestamps are whole, strictly increasing seconds).

Node ``i`` takes ports ``base + 3i`` (JSON-RPC), ``base + 3i + 1`` (Alys's consensus RPC, for
merge miners) and ``base + 3i + 2`` (the network), on 127.0.0.1; without ``--base-port``, free
ports found at creation (:func:`free_ports`). Every node's bootnodes are all the others.
Authorities come first (nodes ``0 .. N-1``, in the spec's rotation order), then full nodes.

Lifecycle: the geths (if any) are started first and waited for; then every node is started at
once (``python -m alys_fast run --config ...``); each is announced on stdout, in index order,
once its JSON-RPC answers — ``node <i> <authority|full> rpc=<url> pid=<pid>``, or a JSON object
per line with ``--json`` — and a node that exits is announced the same way (``node <i> <role>
exited status=<code>``; the others keep running). SIGINT or SIGTERM stops them all: SIGTERM,
then SIGKILL for any still running after the grace period; the geths are stopped after the
nodes, the same way. Notes for a person (where the files are, each geth, how to stop) go to
stderr, so stdout stays one line per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import IO

import msgspec

from alys_fast.actors.remote import set_death_signal
from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID, ETHER, ChainSpec, dev_spec, load_spec
from alys_fast.consensus.approvals import MAX_AUTHORITIES
from alys_fast.engine.geth import (
    GethError,
    GethProcess,
    enode,
    ensure_hex_secret,
    find_geth,
    write_el_genesis,
)
from alys_fast.network.peers import format_enode
from alys_fast.network.transport import load_node_key
from alys_fast.node.keys import write_new_key

LAYOUT_FILE = "devnet.json"
SPEC_FILE = "chain.json"
GETH_DIR = "geth"
GETH_NODE_KEY = "nodekey"  # GethProcess's name for it
PORTS_PER_NODE = 3  # JSON-RPC, consensus RPC, network
PORTS_PER_GETH = 3  # Engine API, RPC, p2p
EXECUTIONS = ("embedded", "geth")
MIN_GETH_SLOT_MS = 1000
MAX_FULL_NODES = 16
HOST = "127.0.0.1"
DEV_BALANCE = 10_000 * ETHER
START_TIMEOUT = 60.0  # seconds a node may take to answer JSON-RPC
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL at stop
POLL = 0.2  # seconds between checks of the nodes' processes
UNEPHEMERAL_PORTS = (20_000, 32_000)  # where free_ports looks


class DevnetNode(msgspec.Struct, frozen=True):
    """One node of a devnet: its place, role, ports and network identity."""

    index: int
    role: str  # "authority" or "full"
    rpc_port: int
    consensus_rpc_port: int
    network_port: int
    node_id: str  # its CURVE public key, hex
    engine_port: int | None = None  # its geth's Engine API (``--execution geth``)
    geth_rpc_port: int | None = None  # its geth's public JSON-RPC
    geth_p2p_port: int | None = None  # where the other geths reach it

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.rpc_port}/"

    @property
    def consensus_rpc_url(self) -> str:
        return f"http://{HOST}:{self.consensus_rpc_port}/"

    @property
    def enode(self) -> str:
        return format_enode(self.node_id, f"{HOST}:{self.network_port}")

    def directory(self, root: Path) -> Path:
        return root / f"node-{self.index}"

    def config(self, root: Path) -> Path:
        return self.directory(root) / "node.toml"

    def geth(self, root: Path, binary: str, spec: ChainSpec, peers: tuple[str, ...]
             ) -> GethProcess:
        """Its geth (``--execution geth``), in ``node-<i>/geth`` on its own ports, with
        ``peers`` (the other geths' enodes) as its static peers."""
        assert self.engine_port is not None and self.geth_rpc_port is not None
        return GethProcess(binary, self.directory(root) / GETH_DIR, spec,
                           auth_port=self.engine_port, http_port=self.geth_rpc_port,
                           p2p_port=self.geth_p2p_port, static_peers=peers)

    def geth_enode(self, root: Path) -> str:
        """Its geth's enode URL (its node key is written at creation)."""
        assert self.geth_p2p_port is not None
        key = (self.directory(root) / GETH_DIR / GETH_NODE_KEY).read_text().strip()
        return enode(bytes.fromhex(key), self.geth_p2p_port)


class DevnetLayout(msgspec.Struct, frozen=True):
    """A devnet as ``devnet.json`` keeps it."""

    slot_ms: int
    nodes: tuple[DevnetNode, ...]
    execution: str = "embedded"  # or "geth": a geth per node

    @property
    def authorities(self) -> int:
        return sum(1 for node in self.nodes if node.role == "authority")

    @property
    def full_nodes(self) -> int:
        return len(self.nodes) - self.authorities


class DevnetError(ValueError):
    """A devnet that cannot be made or started as asked; the text says why."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now, below Linux's ephemeral range (32768
    and up): outgoing connections (the nodes dialing each other) take their local ports from
    that range, and could take a port planned for a node that has not bound it yet."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(*UNEPHEMERAL_PORTS)
        if port in chosen:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def node_ports(count: int, base_port: int | None, *, geth: bool = False
               ) -> list[tuple[int, ...]]:
    """Each of ``count`` nodes' ports: JSON-RPC, consensus RPC, network, and with ``geth``
    its geth's Engine API and RPC (module docstring)."""
    total = (PORTS_PER_NODE + PORTS_PER_GETH * geth) * count
    if base_port is None:
        ports = free_ports(total)
    else:
        ports = list(range(base_port, base_port + total))
        if not (base_port >= 1024 and ports[-1] <= 65535):
            raise DevnetError(f"--base-port must leave {len(ports)} ports within 1024..65535, "
                              f"got {base_port}")
    split = PORTS_PER_NODE * count
    nodes = [tuple(ports[i:i + PORTS_PER_NODE]) for i in range(0, split, PORTS_PER_NODE)]
    if not geth:
        return nodes
    geths = [tuple(ports[i:i + PORTS_PER_GETH]) for i in range(split, total, PORTS_PER_GETH)]
    return [own + its_geth for own, its_geth in zip(nodes, geths, strict=True)]


def create_devnet(root: Path, authorities: int, full_nodes: int = 0, *, slot_ms: int = 1000,
                  base_port: int | None = None, gas_limit: int | None = None,
                  accounts: Iterable[str] = tuple(address for address, _ in DEV_ACCOUNTS),
                  balance: int = DEV_BALANCE, execution: str = "embedded") -> DevnetLayout:
    """Write a new devnet into ``root`` (module docstring): fresh BLS and CURVE keys for every
    node, the chain spec funding ``accounts`` with ``balance`` wei each, the configs and
    ``devnet.json``; with ``execution="geth"`` each node's geth genesis and JWT secret.
    ``root`` must be empty or absent."""
    if execution not in EXECUTIONS:
        raise DevnetError(f"--execution must be embedded or geth, got {execution}")
    with_geth = execution == "geth"
    if with_geth and slot_ms < MIN_GETH_SLOT_MS:
        raise DevnetError("--execution geth needs a --block-time of at least 1 s: geth takes "
                          "only strictly increasing whole-second timestamps")
    if not 1 <= authorities <= MAX_AUTHORITIES:
        raise DevnetError(f"--authorities must be 1 to {MAX_AUTHORITIES}, got {authorities}")
    if not 0 <= full_nodes <= MAX_FULL_NODES:
        raise DevnetError(f"--full-nodes must be 0 to {MAX_FULL_NODES}, got {full_nodes}")
    if root.exists() and any(root.iterdir()):
        raise DevnetError(f"{root} is not empty and holds no devnet ({LAYOUT_FILE})")
    nodes = []
    public_keys = []
    for index, (rpc, consensus, network, *geth_ports) in enumerate(
            node_ports(authorities + full_nodes, base_port, geth=with_geth)):
        directory = root / f"node-{index}"
        (directory / "data").mkdir(parents=True)
        if index < authorities:
            public_keys.append("0x" + write_new_key(directory / "authority.key")
                               .public_key().to_bytes().hex())
        nodes.append(DevnetNode(
            index=index, role="authority" if index < authorities else "full", rpc_port=rpc,
            consensus_rpc_port=consensus, network_port=network,
            node_id=load_node_key(directory / "data").id, **dict(zip(
                ("engine_port", "geth_rpc_port", "geth_p2p_port"), geth_ports, strict=False))))
    spec = msgspec.structs.replace(
        dev_spec(slot_ms=slot_ms, accounts=accounts, balance=balance, chain_id=DEV_CHAIN_ID),
        name="devnet", authorities=tuple(public_keys),
        node_keys=tuple(node.node_id for node in nodes[:authorities]))
    if gas_limit is not None:
        spec = msgspec.structs.replace(spec, gas_limit=gas_limit)
    layout = DevnetLayout(slot_ms=slot_ms, nodes=tuple(nodes), execution=execution)
    (root / SPEC_FILE).write_bytes(_pretty(spec))
    for node in nodes:
        node.config(root).write_text(node_config(node, layout))
        if with_geth:
            geth_dir = node.directory(root) / GETH_DIR
            geth_dir.mkdir()
            try:
                write_el_genesis(spec, geth_dir / "genesis.json")
            except GethError as exc:
                raise DevnetError(str(exc)) from None
            ensure_hex_secret(geth_dir / "jwtsecret", "JWT secret")
            ensure_hex_secret(geth_dir / GETH_NODE_KEY, "node key")
    (root / LAYOUT_FILE).write_bytes(_pretty(layout))
    return layout


def _pretty(value: ChainSpec | DevnetLayout) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"


def load_devnet(root: Path) -> DevnetLayout | None:
    """The devnet in ``root``, None if there is none."""
    path = root / LAYOUT_FILE
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=DevnetLayout)
    except msgspec.DecodeError as exc:
        raise DevnetError(f"{path}: not a devnet layout ({exc})") from None


def node_config(node: DevnetNode, layout: DevnetLayout) -> str:
    """Node ``node``'s config file (TOML; paths relative to its directory)."""
    bootnodes = ",\n".join(f'  "{peer.enode}"' for peer in layout.nodes if peer is not node)
    key = 'authority_key_file = "authority.key"\n' if node.role == "authority" else ""
    return (
        f"# devnet node {node.index} ({node.role}): alys-fast run --config {node.config(Path())}\n"
        'data_dir = "data"\n'
        f'chain = "../{SPEC_FILE}"\n'
        f"{key}"
        "\n[rpc]\n"
        f'host = "{HOST}"\n'
        f"port = {node.rpc_port}\n"
        'cors = ["*"]\n'
        "\n[consensus_rpc]\n"
        f'host = "{HOST}"\n'
        f"port = {node.consensus_rpc_port}\n"
        "\n[network]\n"
        f'listen = "{HOST}:{node.network_port}"\n'
        f"bootnodes = [\n{bootnodes}\n]\n"
        f"{_execution_table(node)}"
    )


def _execution_table(node: DevnetNode) -> str:
    """The ``[execution]`` table naming the node's own geth (nothing on the embedded EVM)."""
    if node.engine_port is None:
        return ""
    return (
        "\n[execution]\n"
        f'engine_url = "http://{HOST}:{node.engine_port}"\n'
        f'jwt_secret_file = "{GETH_DIR}/jwtsecret"\n'
        f'rpc_url = "http://{HOST}:{node.geth_rpc_port}"\n'
    )


def node_line(node: DevnetNode, event: dict[str, object], as_json: bool) -> str:
    """One stdout line about ``node``: ``event`` is ``{"rpc": url, "pid": pid}`` when it
    serves, ``{"exited": status}`` when it stops (a negative status: killed by that signal,
    named in ``signal``)."""
    status = event.get("exited")
    if isinstance(status, int) and status < 0:
        event = {**event, "signal": signal.Signals(-status).name}
    if as_json:
        return json.dumps({"node": node.index, "role": node.role, **event})
    if status is not None:
        event = {"status" if key == "exited" else key: value for key, value in event.items()}
        return f"node {node.index} {node.role} exited " + " ".join(
            f"{key}={value}" for key, value in event.items())
    return f"node {node.index} {node.role} " + " ".join(
        f"{key}={value}" for key, value in event.items())


# --- the processes ---------------------------------------------------------------------------


# Straight to the node: a proxy from the environment (http_proxy) must not see loopback calls.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def serves(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers a JSON-RPC ``eth_chainId``."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            return b'"result"' in response.read()
    except (OSError, urllib.error.URLError):
        return False


class Devnet:
    """The running nodes of one devnet (their geths, with ``geth_binary``, and the merge miner,
    with ``mine``): started, watched, announced on ``out`` and stopped (module docstring)."""

    def __init__(self, root: Path, layout: DevnetLayout, *, out: IO[str], as_json: bool,
                 log_level: str = "INFO", geth_binary: str | None = None) -> None:
        self.root = root
        self.layout = layout
        self.out = out
        self.as_json = as_json
        self.log_level = log_level
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.geths: dict[int, GethProcess] = {}
        if layout.execution == "geth":
            if geth_binary is None:
                raise DevnetError("this devnet runs geth: give its binary")
            spec = load_spec(root / SPEC_FILE)
            enodes = {node.index: node.geth_enode(root) for node in layout.nodes}
            self.geths = {node.index: node.geth(root, geth_binary, spec, tuple(
                url for index, url in enodes.items() if index != node.index))
                for node in layout.nodes}
        self.miner: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def _spawn(self, command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the devnet, which stops all
                preexec_fn=partial(set_death_signal, signal.SIGTERM))

    def start(self) -> None:
        """Start the geths (until each answers), then every node, and announce each node (in
        index order) once it serves."""
        if self.geths:
            asyncio.run(self._start_geths())
        for node in self.layout.nodes:
            self.processes[node.index] = self._spawn(
                [sys.executable, "-m", "alys_fast", "run", "--config",
                 str(node.config(self.root)), "--log-level", self.log_level],
                node.directory(self.root) / "node.log")
        for node in self.layout.nodes:
            process = self.processes[node.index]
            deadline = time.monotonic() + START_TIMEOUT
            while not self.stopping.is_set() and process.poll() is None \
                    and not serves(node.rpc_url):
                if time.monotonic() > deadline:
                    raise DevnetError(f"node {node.index} did not answer on {node.rpc_url} in "
                                      f"{START_TIMEOUT:.0f} s; its log: "
                                      f"{node.directory(self.root) / 'node.log'}")
                self.stopping.wait(POLL)
            if self.stopping.is_set():
                return
            if process.poll() is None:
                self._say(node, {"rpc": node.rpc_url, "pid": process.pid})

    async def _start_geths(self) -> None:
        """``geth init`` and start every node's geth; DevnetError (with its log's tail) if
        one does not answer."""
        async def start(index: int, geth: GethProcess) -> None:
            try:
                await asyncio.to_thread(geth.init)
                geth.start()
                await geth.wait_ready(START_TIMEOUT)
            except GethError as exc:
                raise DevnetError(f"node {index}'s geth did not start: {exc}") from None
            print(f"node {index} geth pid {geth.pid}, Engine API {geth.auth_url}, RPC "
                  f"{geth.http_url}, log {geth.log_path}", file=sys.stderr, flush=True)

        await asyncio.gather(*(start(index, geth) for index, geth in self.geths.items()))

    def mine(self, address: str) -> None:
        """A CPU merge miner (``alys-fast miner``) against authority 0, paying ``address``."""
        self.miner = self._spawn(
            [sys.executable, "-m", "alys_fast", "miner", "--rpc",
             self.layout.nodes[0].consensus_rpc_url, "--address", address],
            self.root / "miner.log")
        print(f"miner pid {self.miner.pid} on {self.layout.nodes[0].consensus_rpc_url}, paying "
              f"{address}; log {self.root / 'miner.log'}", file=sys.stderr, flush=True)

    def watch(self) -> int:
        """Report nodes as they exit until a stop is asked (0) or none is left (1)."""
        reported: set[int] = set()
        while not self.stopping.wait(POLL):
            for node in self.layout.nodes:
                status = self.processes[node.index].poll()
                if status is not None and node.index not in reported:
                    reported.add(node.index)
                    self._say(node, {"exited": status})
            if len(reported) == len(self.layout.nodes):
                print("alys-fast devnet: every node has exited", file=sys.stderr, flush=True)
                return 1
        return 0

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to every process, SIGKILL to those still running after ``grace`` s."""
        running = [p for p in (*self.processes.values(), self.miner)
                   if p is not None and p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.geths:
            asyncio.run(self._stop_geths(grace))

    async def _stop_geths(self, grace: float) -> None:
        await asyncio.gather(*(geth.stop(grace) for geth in self.geths.values()))

    def _say(self, node: DevnetNode, event: dict[str, object]) -> None:
        print(node_line(node, event, self.as_json), file=self.out, flush=True)


# --- the command -----------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    devnet = sub.add_parser(
        "devnet", help="run a federation on this machine: N authorities and M full nodes, "
                       "each its own process")
    devnet.add_argument("--authorities", type=int, metavar="N",
                        help=f"authorities, 1 to {MAX_AUTHORITIES} (required for a new devnet)")
    devnet.add_argument("--full-nodes", type=int, default=None, metavar="M",
                        help="full nodes beside them (default 0)")
    devnet.add_argument("--block-time", type=float, default=None, metavar="SECONDS",
                        help="the slot length: one block per slot (default 1)")
    devnet.add_argument("--gas-limit", type=int, default=None,
                        help="block gas limit (default 30,000,000)")
    devnet.add_argument("--data-dir", type=Path,
                        help="keep the devnet here; a devnet already there is started again "
                             "(default: a temporary directory, deleted on exit)")
    devnet.add_argument("--base-port", type=int, metavar="PORT",
                        help="node i listens on PORT+3i (JSON-RPC), PORT+3i+1 (consensus RPC) "
                             "and PORT+3i+2 (network) (default: free ports)")
    devnet.add_argument("--json", action="store_true",
                        help="one JSON object per line instead of text")
    devnet.add_argument("--mine", action="store_true",
                        help="merge-mine with a CPU miner against authority 0's consensus RPC, "
                             "paying the first dev account")
    devnet.add_argument("--execution", choices=EXECUTIONS, default=None,
                        help="the nodes' EVM: embedded (revm, default) or geth (each node its "
                             "own geth over the Engine API, started and stopped with the devnet)")
    devnet.add_argument("--geth", metavar="PATH",
                        help="the geth binary for --execution geth (default: $ALYS_GETH, geth on "
                             "PATH, ~/go/bin/geth; tools/install_geth.sh installs it)")
    devnet.add_argument("--log-level", default="INFO",
                        help="the nodes' logging level (default INFO; into node-<i>/node.log)")
    devnet.set_defaults(handler=_devnet)


def _layout(args: argparse.Namespace, root: Path) -> DevnetLayout:
    """The devnet already in ``root`` (checked against the options), else a new one."""
    existing = load_devnet(root)
    if existing is None:
        if args.authorities is None:
            raise DevnetError("--authorities is required for a new devnet")
        if args.block_time is not None and not 0.05 <= args.block_time <= 3600:
            raise DevnetError(f"--block-time must be 0.05 to 3600 seconds, got "
                              f"{args.block_time}")
        if args.gas_limit is not None and not 21_000 <= args.gas_limit < 2**63:
            raise DevnetError(f"--gas-limit must be at least 21000, got {args.gas_limit}")
        return create_devnet(root, args.authorities, args.full_nodes or 0,
                             slot_ms=round((args.block_time or 1.0) * 1000),
                             base_port=args.base_port, gas_limit=args.gas_limit,
                             execution=args.execution or "embedded")
    if args.execution is not None and args.execution != existing.execution:
        raise DevnetError(f"{root} holds a devnet with --execution {existing.execution}, not "
                          f"{args.execution}; give another --data-dir for a new one")
    asked = {"--authorities": (args.authorities, existing.authorities),
             "--full-nodes": (args.full_nodes, existing.full_nodes),
             "--block-time": (args.block_time, existing.slot_ms / 1000)}
    for option, (given, kept) in asked.items():
        if given is not None and given != kept:
            raise DevnetError(f"{root} holds a devnet with {option} {kept:g}, not {given:g}; "
                              "give another --data-dir for a new one")
    if args.base_port is not None or args.gas_limit is not None:
        raise DevnetError(f"{root} holds a devnet already: its ports and gas limit are set; "
                          "give another --data-dir for a new one")
    return existing


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _devnet(args: argparse.Namespace) -> int:
    from alys_fast.errors import CliError

    temporary = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="alys-fast-devnet-")) if temporary else args.data_dir
    devnet = None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            layout = _layout(args, root)
        except DevnetError as exc:
            raise CliError(str(exc)) from None
        try:
            geth_binary = find_geth(args.geth) if layout.execution == "geth" else None
        except GethError as exc:
            raise CliError(str(exc)) from None
        devnet = Devnet(root, layout, out=sys.stdout, as_json=args.json,
                        log_level=args.log_level, geth_binary=geth_binary)
        for sig in previous:
            signal.signal(sig, lambda *_: devnet.stopping.set())
        print(f"alys-fast devnet: {_count(layout.authorities, 'authority', 'authorities')}, "
              f"{_count(layout.full_nodes, 'full node', 'full nodes')}, "
              f"{layout.slot_ms / 1000:g} s slots in {root} (node-<i>/node.toml, "
              f"node-<i>/node.log{', a geth each: node-<i>/geth' * bool(devnet.geths)}); "
              "Ctrl-C stops them", file=sys.stderr, flush=True)
        try:
            devnet.start()
        except DevnetError as exc:
            raise CliError(str(exc)) from None
        if args.mine and not devnet.stopping.is_set():
            devnet.mine(DEV_ACCOUNTS[0][0])
        return devnet.watch()
    finally:
        if devnet is not None:
            devnet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
