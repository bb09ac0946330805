"""Strict RLP (Ethereum's Recursive Length Prefix) decode and encode.

``decode`` accepts only the canonical encoding (see ``rlpcore.pxd``), rejects trailing bytes and
nesting deeper than ``max_depth``, and never trusts a length prefix beyond the bytes present, so
hostile input cannot make it allocate or recurse without bound. Items decode to ``bytes`` and
lists to ``list``. ``encode`` takes bytes-like objects, non-negative ints (minimal big-endian,
zero is the empty string) and lists/tuples of those.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t

from rlpcore cimport (
    RLP_EOF, RLP_EXPECTED_LIST, RLP_OK, RLP_TOO_DEEP, RLP_TRAILING, RlpItem, rlp_item,
    rlp_reason, rlp_rule,
)

from alys_fast.validation.errors import InvalidRLP

DEFAULT_MAX_DEPTH = 64


cdef object _error(int code, Py_ssize_t offset):
    return InvalidRLP(rlp_rule(code), reason=rlp_reason(code), offset=offset)


cdef object _decode_items(const uint8_t *base, const uint8_t *p, size_t n, int depth,
                          int max_depth):
    """Decode the payload ``p[:n]`` of a list nested ``depth`` lists deep (top level is 1)."""
    cdef RlpItem it
    cdef int code
    cdef list out = []
    if depth > max_depth:
        raise _error(RLP_TOO_DEEP, p - base)
    while n:
        code = rlp_item(p, n, &it)
        if code != RLP_OK:
            raise _error(code, p - base)
        out.append(_decode_item(base, &it, depth + 1, max_depth))
        p += it.total
        n -= it.total
    return out


cdef inline object _decode_item(const uint8_t *base, RlpItem *it, int depth, int max_depth):
    if it.is_list:
        return _decode_items(base, it.data, it.length, depth, max_depth)
    return PyBytes_FromStringAndSize(<const char *> it.data, it.length)


def decode(data, *, int max_depth=DEFAULT_MAX_DEPTH):
    """Decode one canonical RLP item that spans all of ``data``; raise InvalidRLP otherwise."""
    cdef const uint8_t[::1] view = data
    cdef size_t n = view.shape[0]
    cdef const uint8_t *base = &view[0] if n else NULL
    cdef RlpItem it
    cdef int code = rlp_item(base, n, &it) if n else RLP_EOF
    if code != RLP_OK:
        raise _error(code, 0)
    if it.total != n:
        raise _error(RLP_TRAILING, it.total)
    return _decode_item(base, &it, 1, max_depth)


def decode_list(data, *, int max_depth=DEFAULT_MAX_DEPTH) -> list:
    """Like :func:`decode` but the top-level item must be a list (the usual wire shape)."""
    out = decode(data, max_depth=max_depth)
    if type(out) is not list:
        raise _error(RLP_EXPECTED_LIST, 0)
    return out


cdef bytes _header(size_t length, uint8_t short_base):
    """The header for a payload of ``length`` bytes; ``short_base`` is 0x80 (string) or 0xC0."""
    cdef uint8_t buf[9]
    cdef int nbytes = 0
    cdef size_t v = length
    if length < 56:
        buf[0] = short_base + length
        return PyBytes_FromStringAndSize(<char *> buf, 1)
    while v:
        nbytes += 1
        v >>= 8
    buf[0] = short_base + 55 + nbytes
    v = length
    for i in range(nbytes, 0, -1):
        buf[i] = v & 0xFF
        v >>= 8
    return PyBytes_FromStringAndSize(<char *> buf, 1 + nbytes)


cdef bytes _encode_string(bytes s):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(s)
    if n == 1 and <uint8_t> PyBytes_AS_STRING(s)[0] < 0x80:
        return s
    return _header(n, 0x80) + s


cdef bytes _encode(object obj):
    if type(obj) is bytes:
        return _encode_string(<bytes> obj)
    if isinstance(obj, (list, tuple)):
        payload = b"".join([_encode(x) for x in obj])
        return _header(len(payload), 0xC0) + payload
    if isinstance(obj, int) and not isinstance(obj, bool):
        if obj < 0:
            raise ValueError(f"RLP cannot encode a negative integer: {obj}")
        return _encode_string(obj.to_bytes((obj.bit_length() + 7) // 8, "big"))
    if isinstance(obj, (bytearray, memoryview)):
        return _encode_string(bytes(obj))
    raise TypeError(f"RLP cannot encode {type(obj).__name__}: {obj!r}")


def encode(obj) -> bytes:
    """Encode bytes, non-negative ints and (nested) lists/tuples of them as canonical RLP."""
    return _encode(obj)
