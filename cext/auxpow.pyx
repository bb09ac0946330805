"""Namecoin-format AuxPoW: strict parsing and the rules of ``tests/data/auxpow/RULES.md``.

Byte walking, merkle branches, the commitment search and the expected-index LCG are typed C;
SHA256d is the header-only C core in ``include/sha256.h``. Every refusal is an
:class:`AuxPowError` whose ``code`` is the rule's code in RULES.md.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

cdef extern from "sha256.h" nogil:
    void _sha256d "sha256d"(const uint8_t *data, size_t n, uint8_t *out)

cdef enum:
    HEADER_SIZE = 80
    AUXPOW_FLAG = 0x100
    MAX_CHAIN_BRANCH = 30

cdef const char *MM_HEADER = b"\xfa\xbe\x6d\x6d"  # the merged-mining header


class AuxPowError(ValueError):
    """A refused proof; ``code`` is the rule's code in RULES.md, so callers can match on it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


cdef struct Cursor:
    const uint8_t *p
    Py_ssize_t n
    Py_ssize_t pos


cdef int _need(Cursor *c, Py_ssize_t k) except -1:
    if k < 0 or c.n - c.pos < k:
        raise AuxPowError("truncated", f"need {k} bytes at offset {c.pos}, have {c.n - c.pos}")
    return 0


cdef uint32_t _u32(Cursor *c) except? 0xFFFFFFFF:
    _need(c, 4)
    cdef const uint8_t *q = c.p + c.pos
    c.pos += 4
    return q[0] | (<uint32_t> q[1] << 8) | (<uint32_t> q[2] << 16) | (<uint32_t> q[3] << 24)


cdef uint64_t _compact(Cursor *c) except? 0xFFFFFFFFFFFFFFFF:
    """Bitcoin CompactSize; non-canonical encodings are refused as Bitcoin Core does."""
    _need(c, 1)
    cdef uint8_t tag = c.p[c.pos]
    cdef uint64_t v = 0
    cdef int width = 0
    cdef int i
    c.pos += 1
    if tag < 0xFD:
        return tag
    width = 2 if tag == 0xFD else (4 if tag == 0xFE else 8)
    _need(c, width)
    for i in range(width):
        v |= (<uint64_t> c.p[c.pos + i]) << (8 * i)
    c.pos += width
    if v < (0xFD if width == 2 else (0x10000 if width == 4 else 0x100000000)):
        raise AuxPowError("non-canonical-size", f"CompactSize {v} in {width + 1} bytes")
    return v


cdef Py_ssize_t _length(Cursor *c) except -1:
    """A CompactSize that counts bytes (or 32-byte hashes): bounded by what is left."""
    cdef uint64_t v = _compact(c)
    if v > <uint64_t> (c.n - c.pos):
        raise AuxPowError("truncated", f"length {v} at offset {c.pos} exceeds the input")
    return <Py_ssize_t> v


cdef bytes _take(Cursor *c, Py_ssize_t k):
    _need(c, k)
    cdef bytes out = PyBytes_FromStringAndSize(<const char *> (c.p + c.pos), k)
    c.pos += k
    return out


cdef tuple _branch(Cursor *c):
    cdef Py_ssize_t k = _length(c)
    cdef list out = []
    _need(c, 32 * k)
    for _ in range(k):
        out.append(_take(c, 32))
    return tuple(out)


cdef bytes _digest(const uint8_t *p, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 32)
    _sha256d(p, n, <uint8_t *> PyBytes_AS_STRING(out))
    return out


def sha256d(bytes data) -> bytes:
    """SHA256d, the hash of every AuxPoW rule."""
    return _digest(<const uint8_t *> PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef tuple _coinbase(Cursor *c):
    """Parse a Bitcoin tx (witness allowed); return (raw, stripped-for-txid, scriptSig, outputs)."""
    cdef Py_ssize_t start = c.pos
    cdef Py_ssize_t body_start, body_end, i, k, n_in, n_out
    cdef bint segwit = False
    cdef bytes script_sig = None
    cdef list outputs = []
    _u32(c)
    if c.n - c.pos >= 2 and c.p[c.pos] == 0 and c.p[c.pos + 1] == 1:
        segwit = True
        c.pos += 2
    body_start = c.pos
    n_in = _length(c)
    for i in range(n_in):
        _need(c, 36)
        c.pos += 36
        k = _length(c)
        if i == 0:
            script_sig = _take(c, k)
        else:
            _need(c, k)
            c.pos += k
        _u32(c)
    n_out = _length(c)
    for i in range(n_out):
        _need(c, 8)
        c.pos += 8
        outputs.append(_take(c, _length(c)))
    body_end = c.pos
    if segwit:
        for i in range(n_in):
            for _ in range(_length(c)):
                k = _length(c)
                _need(c, k)
                c.pos += k
    _u32(c)
    raw = PyBytes_FromStringAndSize(<const char *> (c.p + start), c.pos - start)
    stripped = (
        PyBytes_FromStringAndSize(<const char *> (c.p + start), 4)
        + PyBytes_FromStringAndSize(<const char *> (c.p + body_start), body_end - body_start)
        + PyBytes_FromStringAndSize(<const char *> (c.p + c.pos - 4), 4)
    )
    return raw, sha256d(stripped), script_sig, tuple(outputs)


def parse(bytes data) -> tuple:
    """Parse an AuxPoW alone (RULES.md §1 without the child header); every byte must be used.

    Returns (coinbase, txid, scriptSig or None, output scripts, coinbase branch, index,
    chain branch, chain index, parent header).
    """
    cdef Cursor c
    c.p = <const uint8_t *> PyBytes_AS_STRING(data)
    c.n = PyBytes_GET_SIZE(data)
    c.pos = 0
    coinbase, txid, script_sig, outputs = _coinbase(&c)
    _need(&c, 32)
    c.pos += 32  # hashBlock: a legacy CMerkleTx field that no rule reads
    branch = _branch(&c)
    index = <int32_t> _u32(&c)
    chain_branch = _branch(&c)
    chain_index = <int32_t> _u32(&c)
    parent = _take(&c, HEADER_SIZE)
    if c.pos != c.n:
        raise AuxPowError("trailing-data", f"{c.n - c.pos} bytes after the parent header")
    return (coinbase, txid, script_sig, outputs, branch, index, chain_branch, chain_index, parent)


def split_header(bytes data) -> tuple:
    """Split an 80-byte header and its AuxPoW bytes (None when the flag is clear: V3, V4)."""
    if PyBytes_GET_SIZE(data) < HEADER_SIZE:
        raise AuxPowError("truncated", f"a header is {HEADER_SIZE} bytes, got {len(data)}")
    cdef const uint8_t *p = <const uint8_t *> PyBytes_AS_STRING(data)
    cdef uint32_t version = p[0] | (<uint32_t> p[1] << 8) | (<uint32_t> p[2] << 16) | (
        <uint32_t> p[3] << 24)
    rest = data[HEADER_SIZE:]
    if not version & AUXPOW_FLAG:
        if rest:
            raise AuxPowError("trailing-data", "bytes after a header without the auxpow flag")
        return data[:HEADER_SIZE], None
    if not rest:
        raise AuxPowError("auxpow-flag-without-auxpow", "the auxpow flag is set, no auxpow follows")
    return data[:HEADER_SIZE], rest


cdef void _pair(const uint8_t *left, const uint8_t *right, uint8_t *out) noexcept nogil:
    cdef uint8_t buf[64]
    memcpy(buf, left, 32)
    memcpy(buf + 32, right, 32)
    _sha256d(buf, 64, out)


def merkle_root(bytes leaf, tuple branch, int32_t index) -> bytes:
    """CheckMerkleBranch (R4, R6): index bit i says the branch hash goes left; -1 gives zero."""
    cdef uint8_t h[32]
    cdef bytes b
    if index == -1:
        return bytes(32)
    memcpy(h, PyBytes_AS_STRING(leaf), 32)
    for b in branch:
        if index & 1:
            _pair(<const uint8_t *> PyBytes_AS_STRING(b), h, h)
        else:
            _pair(h, <const uint8_t *> PyBytes_AS_STRING(b), h)
        index >>= 1
    return PyBytes_FromStringAndSize(<const char *> h, 32)


cdef bytes _fold_side_mask(bytes leaf, tuple branch, uint32_t mask):
    """Alys's ``check_merkle_branch``: bit ``n % 32`` of the u32 side mask (a release-build Rust
    shift) puts branch hash n on the left; no index is special, unlike :func:`merkle_root`."""
    cdef uint8_t h[32]
    cdef bytes b
    cdef Py_ssize_t n = 0
    memcpy(h, PyBytes_AS_STRING(leaf), 32)
    for b in branch:
        if (mask >> (n & 31)) & 1:
            _pair(<const uint8_t *> PyBytes_AS_STRING(b), h, h)
        else:
            _pair(h, <const uint8_t *> PyBytes_AS_STRING(b), h)
        n += 1
    return PyBytes_FromStringAndSize(<const char *> h, 32)


cpdef uint32_t expected_index(uint32_t nonce, uint32_t chain_id, int h):
    """getExpectedIndex: the slot a chain must take in the merged-mining tree (R10)."""
    cdef uint32_t r = nonce * 1103515245u + 12345u
    r = (r + chain_id) * 1103515245u + 12345u
    return r & ((1u << h) - 1u)


cdef Py_ssize_t _find(const uint8_t *hay, Py_ssize_t n, const uint8_t *needle, Py_ssize_t k,
                      Py_ssize_t start):
    cdef Py_ssize_t i
    for i in range(start, n - k + 1):
        if memcmp(hay + i, needle, k) == 0:
            return i
    return -1


cdef uint32_t _le32(const uint8_t *q):
    return q[0] | (<uint32_t> q[1] << 8) | (<uint32_t> q[2] << 16) | (<uint32_t> q[3] << 24)


def check(tuple proof, bytes committed_hash, uint32_t chain_id, bint alys, bint strict_chain_id,
          bytes pow_hash, bytes target) -> None:
    """The structural rules R1-R10 in Dogecoin's order, then V6 (``pow_hash`` <= ``target``,
    both 32 bytes little-endian); Alys reads its commitment from coinbase output 2 or 3 (AL1),
    folds branches by their u32 side masks (AL2) and commits to the chain root's own bytes,
    unreversed (AL3: the script holds createauxblock's ``hash`` verbatim for an empty branch)."""
    cdef bytes script, root, out
    cdef uint8_t script_root[32]
    cdef const uint8_t *s
    cdef const uint8_t *r
    cdef Py_ssize_t n, pc, head, i
    cdef uint32_t size, nonce, parent_version
    cdef int h
    (_coinbase_tx, txid, script_sig, outputs, branch, index, chain_branch, chain_index,
     parent) = proof
    if len(committed_hash) != 32 or len(pow_hash) != 32 or len(target) != 32:
        raise ValueError("committed_hash, pow_hash and target are 32 bytes each")
    if not alys and index != 0:
        raise AuxPowError("nindex-not-zero", f"coinbase index is {index}, not 0")
    parent_version = _le32(<const uint8_t *> PyBytes_AS_STRING(parent))
    if strict_chain_id and parent_version >> 16 == chain_id:
        raise AuxPowError("parent-has-own-chain-id", f"parent block has chain id {chain_id}")
    h = len(chain_branch)
    if h > MAX_CHAIN_BRANCH:
        raise AuxPowError("chain-merkle-branch-too-long", f"{h} hashes, at most 30")
    if alys:
        root = _fold_side_mask(txid, branch, <uint32_t> <int32_t> index)
    else:
        root = merkle_root(txid, branch, 0)
    if memcmp(PyBytes_AS_STRING(root), PyBytes_AS_STRING(parent) + 36, 32) != 0:
        raise AuxPowError("coinbase-not-in-parent-merkle-root",
                          "the coinbase branch does not reach the parent's merkle root")
    if script_sig is None:
        raise AuxPowError("coinbase-has-no-inputs", "the parent coinbase has no inputs")
    if alys:
        root = _fold_side_mask(committed_hash, chain_branch, <uint32_t> <int32_t> chain_index)
        memcpy(script_root, PyBytes_AS_STRING(root), 32)
    else:
        root = merkle_root(committed_hash, chain_branch, chain_index)
        r = <const uint8_t *> PyBytes_AS_STRING(root)
        for i in range(32):
            script_root[i] = r[31 - i]
    if alys:
        # Alys's CoinbaseVout: output 2 if it is the whole commitment to this root, else 3.
        script = None
        for i in (2, 3):
            if i < len(outputs):
                out = outputs[i]
                if (len(out) == 44 and memcmp(PyBytes_AS_STRING(out), MM_HEADER, 4) == 0
                        and memcmp(PyBytes_AS_STRING(out) + 4, script_root, 32) == 0):
                    script = out
                    break
        if script is None:
            raise AuxPowError("chain-merkle-root-not-in-coinbase",
                              "no 44-byte commitment to the chain root in coinbase output 2 or 3")
        pc = 4
    else:
        script = script_sig
    s = <const uint8_t *> PyBytes_AS_STRING(script)
    n = PyBytes_GET_SIZE(script)
    if not alys:
        pc = _find(s, n, script_root, 32, 0)
        if pc < 0:
            raise AuxPowError("chain-merkle-root-not-in-coinbase",
                              "the chain merkle root is not in the coinbase scriptSig")
        head = _find(s, n, <const uint8_t *> MM_HEADER, 4, 0)
        if head >= 0:
            if _find(s, n, <const uint8_t *> MM_HEADER, 4, head + 1) >= 0:
                raise AuxPowError("multiple-mm-headers", "fabe6d6d occurs more than once")
            if head + 4 != pc:
                raise AuxPowError("mm-header-not-adjacent-to-root",
                                  f"header at {head}, root at {pc}")
        elif pc > 20:
            raise AuxPowError("root-beyond-first-20-bytes", f"legacy root at offset {pc}")
    if n - (pc + 32) < 8:
        raise AuxPowError("missing-tree-size-and-nonce", "fewer than 8 bytes after the root")
    size = _le32(s + pc + 32)
    nonce = _le32(s + pc + 36)
    if size != (1u << h):
        raise AuxPowError("tree-size-mismatch", f"tree size {size}, branch length {h}")
    if chain_index != <int64_t> expected_index(nonce, chain_id, h):
        raise AuxPowError("wrong-chain-index",
                          f"chain index {chain_index}, expected "
                          f"{expected_index(nonce, chain_id, h)}")
    s = <const uint8_t *> PyBytes_AS_STRING(pow_hash)
    r = <const uint8_t *> PyBytes_AS_STRING(target)
    for i in range(31, -1, -1):
        if s[i] != r[i]:
            if s[i] > r[i]:
                raise AuxPowError("parent-pow-above-target",
                                  "the parent's proof of work is above the target")
            break
