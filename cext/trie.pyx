"""Compiled core of the Merkle-Patricia root (see ``alys_fast/validation/trie.py`` for the rules).

``root(entries)`` takes the entries sorted by key, each ``(nibbles, value)`` with one nibble per
byte, and returns the root hash. Nodes are emitted directly as RLP bytes (no intermediate
lists), children referenced inline below 32 bytes and by Keccak-256 otherwise, exactly as the
Python reference in ``trie.py`` builds them; the tests check both agree.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t

from keccak cimport keccak256 as _keccak256

cdef bytes _EMPTY = b"\x80"


cdef bytes _length_prefix(Py_ssize_t length, uint8_t short_base):
    """RLP header for a payload of ``length`` bytes (``short_base`` 0x80 strings, 0xc0 lists)."""
    cdef uint8_t buf[9]
    cdef int n = 0, i
    cdef Py_ssize_t rest = length
    if length < 56:
        buf[0] = short_base + <uint8_t> length
        return PyBytes_FromStringAndSize(<char *> buf, 1)
    while rest:
        n += 1
        rest >>= 8
    buf[0] = short_base + 55 + n
    for i in range(n):
        buf[n - i] = <uint8_t> ((length >> (8 * i)) & 0xFF)
    return PyBytes_FromStringAndSize(<char *> buf, n + 1)


cdef bytes _rlp_string(bytes value):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    if n == 1 and <uint8_t> PyBytes_AS_STRING(value)[0] < 0x80:
        return value
    return _length_prefix(n, 0x80) + value


cdef bytes _hex_prefix(bytes key, Py_ssize_t start, Py_ssize_t end, bint leaf):
    """Compact (hex-prefix) encoding of nibbles ``key[start:end]``, as an RLP string."""
    cdef const uint8_t *k = <const uint8_t *> PyBytes_AS_STRING(key)
    cdef Py_ssize_t count = end - start, size = count // 2 + 1, i, j
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t *o = <uint8_t *> PyBytes_AS_STRING(out)
    cdef uint8_t flag = 2 if leaf else 0
    if count % 2:
        o[0] = ((flag + 1) << 4) | k[start]
        j = start + 1
    else:
        o[0] = flag << 4
        j = start
    for i in range(1, size):
        o[i] = (k[j] << 4) | k[j + 1]
        j += 2
    return _rlp_string(out)


cdef bytes _reference(bytes encoded):
    """How a parent refers to a child node: inline below 32 bytes, else by its hash."""
    cdef bytes digest
    if PyBytes_GET_SIZE(encoded) < 32:
        return encoded
    digest = PyBytes_FromStringAndSize(NULL, 33)
    (<uint8_t *> PyBytes_AS_STRING(digest))[0] = 0xA0
    _keccak256(<const uint8_t *> PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded),
               <uint8_t *> PyBytes_AS_STRING(digest) + 1)
    return digest


cdef inline bytes _key(list entries, Py_ssize_t i):
    return <bytes> (<tuple> entries[i])[0]


cdef bytes _node(list entries, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t depth):
    """RLP of the node over sorted ``entries[lo:hi]``, whose keys share ``depth`` nibbles."""
    cdef bytes first, last, payload
    cdef const uint8_t *f
    cdef const uint8_t *l
    cdef Py_ssize_t limit, n, start, end
    cdef uint8_t nibble, expected
    cdef list parts
    if hi - lo == 1:
        first = _key(entries, lo)
        payload = (_hex_prefix(first, depth, PyBytes_GET_SIZE(first), True)
                   + _rlp_string(<bytes> (<tuple> entries[lo])[1]))
        return _length_prefix(PyBytes_GET_SIZE(payload), 0xC0) + payload
    first = _key(entries, lo)
    last = _key(entries, hi - 1)
    f = <const uint8_t *> PyBytes_AS_STRING(first)
    l = <const uint8_t *> PyBytes_AS_STRING(last)
    limit = min(PyBytes_GET_SIZE(first), PyBytes_GET_SIZE(last))
    n = depth
    while n < limit and f[n] == l[n]:
        n += 1
    if n > depth:
        payload = _hex_prefix(first, depth, n, False) + _reference(_node(entries, lo, hi, n))
        return _length_prefix(PyBytes_GET_SIZE(payload), 0xC0) + payload
    parts = [_EMPTY] * 17
    start = lo
    if PyBytes_GET_SIZE(first) == depth:  # a key ending here sorts first: the branch's value
        parts[16] = _rlp_string(<bytes> (<tuple> entries[lo])[1])
        start += 1
    while start < hi:
        expected = (<const uint8_t *> PyBytes_AS_STRING(_key(entries, start)))[depth]
        end = start + 1
        while end < hi:
            nibble = (<const uint8_t *> PyBytes_AS_STRING(_key(entries, end)))[depth]
            if nibble != expected:
                break
            end += 1
        parts[expected] = _reference(_node(entries, start, end, depth + 1))
        start = end
    payload = b"".join(parts)
    return _length_prefix(PyBytes_GET_SIZE(payload), 0xC0) + payload


def root(list entries) -> bytes:
    """Root hash over non-empty, key-sorted ``[(nibbles, value), ...]`` (unique keys)."""
    cdef bytes encoded = _node(entries, 0, len(entries), 0)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 32)
    _keccak256(<const uint8_t *> PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded),
               <uint8_t *> PyBytes_AS_STRING(out))
    return out
