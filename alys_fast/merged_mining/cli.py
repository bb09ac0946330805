"""``alys-fast auxpow verify|decode`` for other tools, and ``alys-fast miner``, a CPU merge miner.

``auxpow verify --chain-id N [--profile alys|namecoin|dogecoin] [--strict-chain-id]
[--bits B | --target T] [--hash H] HEX`` prints ``{"valid", "rule", "block_hash"}``; exit status
0 valid, 1 invalid, 2 unusable input. HEX is a child header carrying its AuxPoW (its version has
the 0x100 flag; transaction versions are 1 or 2, so a bare proof never does) or, with ``--hash``,
a bare AuxPoW. ``block_hash`` is the hash the proof commits to: the child header's hash in
display hex (as explorers print it), or ``--hash`` as given (Alys: ``createauxblock``'s ``hash``,
bytes as spelled). The target is ``--bits``/``--target``, else the header's nBits. The ``dogecoin``
profile is ``namecoin`` with the scrypt parent PoW. ``--strict-chain-id`` turns on V2 and R2 for
``namecoin``/``dogecoin``; Alys always refuses a parent carrying its chain id (AL4), so ``alys``
is always strict.

``auxpow decode HEX`` prints the parsed proof; block and transaction ids in display hex, every
other byte string (branches, scripts, the commitment) as on the wire.

``miner --rpc URL --address 0x… [--processes N]`` asks a node's consensus RPC for work
(``createauxblock``; HTTP 503 / -32606 means nothing to mine yet: wait and ask again), grinds
header nonces in N processes (chunks of the nonce space, extra nonces past 2**32), submits each
proof (``submitauxblock``), logs it with every process's hashes/s, asks for fresh work every
``--refresh`` seconds, and stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alys_fast.auxpow import (
    AuxPow,
    AuxPowError,
    parse_auxpow,
    parse_header,
    sha256d,
    target_from_bits,
    verify_auxpow,
    verify_header,
)
from alys_fast.errors import CliError
from alys_fast.merged_mining.miner import (
    MM_HEADER,
    NONCES,
    AuxBlock,
    AuxBlockError,
    MiningJob,
    grind,
)

log = logging.getLogger(__name__)

PROFILES = ("alys", "namecoin", "dogecoin")
AUXPOW_FLAG = 0x100
CHUNK = 1 << 18  # nonces per task: about a quarter of a second on one core
NO_WORK = -32606


# --- auxpow verify / decode ----------------------------------------------------------------------

def _hex_arg(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise CliError(f"{what} is not hex: '{shown}'") from None


def _is_header(data: bytes) -> bool:
    return len(data) >= 80 and int.from_bytes(data[:4], "little") & AUXPOW_FLAG != 0


def _bits(args: argparse.Namespace) -> int | None:
    if args.bits is None:
        return None
    try:
        bits = int(args.bits, 16)
    except ValueError:
        raise CliError(f"--bits is a hex compact target, got '{args.bits}'") from None
    try:
        target_from_bits(bits)
    except AuxPowError as exc:
        raise CliError(f"--bits: {exc.message}") from None
    return bits


def _bare_target(args: argparse.Namespace) -> int:
    bits = _bits(args)
    if bits is not None:
        return target_from_bits(bits)
    if args.target is None:
        raise CliError("a bare proof needs --bits or --target")
    try:
        target = int(args.target, 16)
    except ValueError:
        raise CliError(f"--target is hex, got '{args.target}'") from None
    if not 0 < target < 2**256:
        raise CliError(f"--target must be 1 to 2**256-1, got {args.target}")
    return target


def _verify(args: argparse.Namespace) -> int:
    data = _hex_arg(args.proof, "the proof")
    profile = "namecoin" if args.profile == "dogecoin" else args.profile
    pow_algo = "scrypt" if args.profile == "dogecoin" else "sha256d"
    strict = args.strict_chain_id or args.profile == "alys"
    if not 0 <= args.chain_id < 2**32:
        raise CliError(f"--chain-id must be 0 to 2**32-1, got {args.chain_id}")
    verdict: dict[str, Any] = {"valid": False, "rule": None, "block_hash": None}
    if args.hash is not None:
        committed = _hex_arg(args.hash, "--hash")
        if len(committed) != 32:
            raise CliError(f"--hash is 32 bytes, got {len(committed)}")
        target = _bare_target(args)
        verdict["block_hash"] = committed.hex()

        def check() -> None:
            verify_auxpow(parse_auxpow(data), committed, args.chain_id, target, profile,
                          strict_chain_id=strict, pow_algo=pow_algo)
    elif _is_header(data):
        if args.target is not None:
            raise CliError("--target needs a bare proof (--hash); a header's target is its "
                           "nBits or --bits")
        bits = _bits(args)
        verdict["block_hash"] = sha256d(data[:80])[::-1].hex()

        def check() -> None:
            verify_header(data, args.chain_id, profile, strict_chain_id=strict,
                          pow_algo=pow_algo, bits=bits)
    else:
        raise CliError("the proof is neither a header with the auxpow flag (0x100) nor, with "
                       "--hash, a bare AuxPoW")
    try:
        check()
    except AuxPowError as exc:
        verdict.update(rule=exc.code, message=exc.message)
        print(json.dumps(verdict))
        return 1
    verdict["valid"] = True
    print(json.dumps(verdict))
    return 0


def _commitment(script: bytes) -> dict[str, Any] | None:
    if len(script) != 44 or not script.startswith(MM_HEADER):
        return None
    return {"root": script[4:36].hex(), "tree_size": int.from_bytes(script[36:40], "little"),
            "tree_nonce": int.from_bytes(script[40:44], "little")}


def header_json(header: bytes) -> dict[str, Any]:
    """An 80-byte block header's fields; hashes in display hex."""
    version = int.from_bytes(header[:4], "little")
    return {
        "hash": sha256d(header)[::-1].hex(),
        "version": version,
        "chain_id": version >> 16,
        "previous_block_hash": header[4:36][::-1].hex(),
        "merkle_root": header[36:68][::-1].hex(),
        "time": int.from_bytes(header[68:72], "little"),
        "bits": header[72:76][::-1].hex(),
        "nonce": int.from_bytes(header[76:80], "little"),
    }


def auxpow_json(auxpow: AuxPow) -> dict[str, Any]:
    """A parsed proof for display (see the module docstring for the hex conventions)."""
    outputs = auxpow.output_scripts
    return {
        "coinbase_txid": auxpow.coinbase_txid[::-1].hex(),
        "coinbase_tx": auxpow.coinbase_tx.hex(),
        "coinbase_script_sig": None if auxpow.script_sig is None else auxpow.script_sig.hex(),
        "coinbase_output_scripts": [s.hex() for s in outputs],
        "alys_commitment": next(
            (c for c in (_commitment(s) for s in outputs[2:4]) if c is not None), None),
        "coinbase_branch": [h.hex() for h in auxpow.coinbase_branch],
        "coinbase_index": auxpow.coinbase_index,
        "chain_branch": [h.hex() for h in auxpow.chain_branch],
        "chain_index": auxpow.chain_index,
        "parent": header_json(auxpow.parent_header),
    }


def _decode(args: argparse.Namespace) -> int:
    data = _hex_arg(args.proof, "the proof")
    try:
        if _is_header(data):
            header, auxpow = parse_header(data)
            assert auxpow is not None  # the flag is set
            out = {"header": header_json(header), "auxpow": auxpow_json(auxpow)}
        else:
            out = {"auxpow": auxpow_json(parse_auxpow(data))}
    except AuxPowError as exc:
        raise CliError(f"not an AuxPoW: {exc}") from None
    print(json.dumps(out, indent=1))
    return 0


# --- miner -------------------------------------------------------------------------------------

class RpcError(Exception):
    """A consensus RPC call that failed; ``code`` is the JSON-RPC error code when one came."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConsensusRpc:
    """A JSON-RPC 1.0-style client of Alys's consensus RPC (§3.1)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = json.dumps({"method": method, "params": params, "id": self._id}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
        except urllib.error.HTTPError as exc:
            answer = exc.read()
            if not answer:
                raise RpcError(f"{method}: HTTP {exc.code} without a body") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RpcError(f"{method}: cannot reach {self.url}: {reason}") from None
        try:
            decoded = json.loads(answer)
            error = decoded.get("error")
        except (ValueError, AttributeError):
            raise RpcError(f"{method}: the answer is not a JSON-RPC object") from None
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            raise RpcError(f"{method}: {message} (code {code})", code)
        return decoded.get("result")


def _quiet_worker() -> None:
    """Worker processes leave SIGINT/SIGTERM to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def grind_chunk(prefix: bytes, target: int, start: int, count: int) -> tuple[int, int | None,
                                                                                int, float]:
    """One pool task: (worker pid, nonce or None, hashes tried, seconds)."""
    began = time.perf_counter()
    nonce = grind(prefix, target, start, count)
    tried = count if nonce is None else nonce - start + 1
    return os.getpid(), nonce, tried, time.perf_counter() - began


@dataclass
class HashRates:
    """Hashes and seconds per worker process, for the log."""

    work: dict[int, list[float]] = field(default_factory=dict)

    def add(self, pid: int, hashes: int, seconds: float) -> None:
        entry = self.work.setdefault(pid, [0, 0.0])
        entry[0] += hashes
        entry[1] += seconds

    def summary(self) -> str:
        return ", ".join(f"pid {pid}: {h / max(s, 1e-9):,.0f} H/s"
                         for pid, (h, s) in sorted(self.work.items()))


def search(pool: Any, job: MiningJob, processes: int, stop: threading.Event, deadline: float,
           rates: HashRates) -> tuple[int, int] | None:
    """Grind ``job`` across the pool until a nonce is found (returns (extra nonce, nonce)),
    ``stop`` is set or ``deadline`` (monotonic) passes (None)."""
    target = job.target
    tasks = ((extra, start) for extra in range(2**63) for start in range(0, NONCES, CHUNK))
    prefixes: dict[int, bytes] = {}
    pending: deque = deque()
    while not stop.is_set() and time.monotonic() < deadline:
        while len(pending) < 2 * processes:
            extra, start = next(tasks)
            prefix = prefixes.setdefault(extra, job.prefix(extra))
            pending.append((extra, pool.apply_async(grind_chunk, (prefix, target, start, CHUNK))))
        extra, result = pending[0]
        if not result.ready():
            result.wait(0.1)
            continue
        pending.popleft()
        pid, nonce, hashes, seconds = result.get()
        rates.add(pid, hashes, seconds)
        if nonce is not None:
            return extra, nonce
    return None


def run_miner(rpc: ConsensusRpc, address: str, processes: int, stop: threading.Event, *,
              retry: float = 1.0, refresh: float = 30.0,
              on_submit: Callable[[AuxBlock, bytes], None] | None = None) -> int:
    """Mine until ``stop`` is set: work, grind, submit, repeat."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_quiet_worker) as pool:
        rates = HashRates()
        while not stop.is_set():
            try:
                block = AuxBlock.from_json(rpc.call("createauxblock", [address]))
            except RpcError as exc:
                if exc.code == NO_WORK:
                    log.debug("no work yet: %s", exc)
                else:
                    log.warning("%s; asking again in %.1f s", exc, retry)
                stop.wait(retry)
                continue
            except AuxBlockError as exc:
                log.warning("createauxblock: %s; asking again in %.1f s", exc, retry)
                stop.wait(retry)
                continue
            job = MiningJob.for_block(block, time=int(time.time()))
            began = time.monotonic()
            found = search(pool, job, processes, stop, began + refresh, rates)
            if found is None:
                continue
            proof = job.proof(*found)
            try:
                rpc.call("submitauxblock", [block.hash.hex(), proof.hex()])
            except RpcError as exc:
                log.warning("proof for %s (height %d) refused: %s", block.hash.hex(),
                            block.height, exc)
                continue
            log.info("found a proof for %s (height %d, bits %08x) in %.2f s; %s",
                     block.hash.hex(), block.height, block.bits, time.monotonic() - began,
                     rates.summary())
            if on_submit is not None:
                on_submit(block, proof)
        pool.terminate()
    return 0


def _mine(args: argparse.Namespace) -> int:
    address = args.address
    if len(address) != 42 or not address.startswith("0x"):
        raise CliError(f"--address is a 0x-prefixed 20-byte address, got '{address}'")
    _hex_arg(address[2:], "--address")
    if not 1 <= args.processes <= 1024:
        raise CliError(f"--processes must be 1 to 1024, got {args.processes}")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    log.info("mining for %s against %s with %d process(es)", address, args.rpc, args.processes)
    return run_miner(ConsensusRpc(args.rpc), address, args.processes, stop,
                     retry=args.retry, refresh=args.refresh)


def register(sub: argparse._SubParsersAction) -> None:
    auxpow = sub.add_parser("auxpow", help="verify and decode AuxPoW (merged mining) proofs")
    commands = auxpow.add_subparsers(dest="auxpow_command", metavar="COMMAND", required=True)
    verify = commands.add_parser("verify", help="check a proof; print a JSON verdict")
    verify.add_argument("--chain-id", type=lambda s: int(s, 0), required=True,
                        help="the merge-mined chain's id (Alys DEV: 121212)")
    verify.add_argument("--profile", choices=PROFILES, default="alys")
    verify.add_argument("--strict-chain-id", action="store_true",
                        help="namecoin/dogecoin: check the chain ids (V2, R2); alys always does")
    target = verify.add_mutually_exclusive_group()
    target.add_argument("--bits", help="the compact target, hex (default: the header's nBits)")
    target.add_argument("--target", help="the target, hex")
    verify.add_argument("--hash", help="the committed hash, hex, for a bare AuxPoW")
    verify.add_argument("proof", metavar="HEX", help="a header with its AuxPoW, or a bare AuxPoW")
    verify.set_defaults(handler=_verify)
    decode = commands.add_parser("decode", help="print a proof's fields as JSON")
    decode.add_argument("proof", metavar="HEX", help="a header with its AuxPoW, or a bare AuxPoW")
    decode.set_defaults(handler=_decode)

    miner = sub.add_parser("miner", help="merge-mine against a node's consensus RPC (CPU)")
    miner.add_argument("--rpc", default="http://127.0.0.1:3000",
                       help="the consensus JSON-RPC URL (default %(default)s)")
    miner.add_argument("--address", required=True, help="the fee recipient, 0x + 20 bytes hex")
    miner.add_argument("--processes", type=int, default=1, help="grinding processes (default 1)")
    miner.add_argument("--retry", type=float, default=1.0,
                       help="seconds between asks when there is no work (default 1)")
    miner.add_argument("--refresh", type=float, default=30.0,
                       help="seconds before asking for fresh work (default 30)")
    miner.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    miner.set_defaults(handler=_mine)
