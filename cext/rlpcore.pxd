# Strict RLP item parsing shared (inlined) by rlp.pyx and txcore.pyx; GIL-free, no allocation.
#
# An item is a byte string or a list; its header says which and how long. Canonical form is
# enforced here once: a single byte below 0x80 is its own encoding, lengths under 56 use the short
# form, long-form lengths have no leading zero byte, and a payload never runs past its container.
# Errors are small integers (RLP_*) that the callers turn into messages via RLP_REASONS.

from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    RLP_OK = 0
    RLP_EOF = 1                 # input ends where an item header was expected
    RLP_TRUNCATED = 2           # the header promises more bytes than are left
    RLP_WRAPPED_SINGLE_BYTE = 3
    RLP_LONG_FORM_SHORT = 4
    RLP_LENGTH_LEADING_ZERO = 5
    RLP_INT_LEADING_ZERO = 6
    RLP_TRAILING = 7
    RLP_EXPECTED_LIST = 8
    RLP_EXPECTED_STRING = 9
    RLP_TOO_DEEP = 10
    RLP_TOO_LARGE = 11
    RLP_INT_TOO_LARGE = 12

cdef struct RlpItem:
    const uint8_t *data   # payload start
    size_t length         # payload length
    size_t total          # header + payload
    bint is_list


cdef inline int rlp_item(const uint8_t *p, size_t avail, RlpItem *it) noexcept nogil:
    """Parse the item header at ``p`` (``avail`` bytes left) into ``it``; return an RLP_* code."""
    cdef uint8_t b
    cdef size_t ll, n, i
    it.data = p  # an empty item until parsed, so no caller ever reads garbage
    it.length = 0
    it.total = 0
    it.is_list = False
    if avail == 0:
        return RLP_EOF
    b = p[0]
    if b < 0x80:
        it.length = 1
        it.total = 1
        return RLP_OK
    it.is_list = b >= 0xC0
    if b < 0xB8 or (0xC0 <= b < 0xF8):
        n = b - (0xC0 if it.is_list else 0x80)
        if n > avail - 1:
            return RLP_TRUNCATED
        if n == 1 and not it.is_list and p[1] < 0x80:
            return RLP_WRAPPED_SINGLE_BYTE
        it.data = p + 1
        it.length = n
        it.total = 1 + n
        return RLP_OK
    ll = b - (0xF7 if it.is_list else 0xB7)  # 1..8 length bytes
    if ll > avail - 1:
        return RLP_TRUNCATED
    if p[1] == 0:
        return RLP_LENGTH_LEADING_ZERO
    n = 0
    for i in range(ll):
        n = (n << 8) | p[1 + i]
    if n < 56:
        return RLP_LONG_FORM_SHORT
    if n > avail - 1 - ll:
        return RLP_TRUNCATED
    it.data = p + 1 + ll
    it.length = n
    it.total = 1 + ll + n
    return RLP_OK


cdef inline int rlp_uint(const RlpItem *it, size_t max_bytes) noexcept nogil:
    """Check that ``it`` is a canonical unsigned integer of at most ``max_bytes`` bytes."""
    if it.is_list:
        return RLP_EXPECTED_STRING
    if it.length and it.data[0] == 0:
        return RLP_INT_LEADING_ZERO
    if it.length > max_bytes:
        return RLP_INT_TOO_LARGE
    return RLP_OK


cdef inline uint64_t rlp_be64(const RlpItem *it) noexcept nogil:
    """The big-endian value of a payload already known to be at most 8 bytes."""
    cdef uint64_t v = 0
    cdef size_t i
    for i in range(it.length):
        v = (v << 8) | it.data[i]
    return v


cdef inline int rlp_uint64(const RlpItem *it, uint64_t *out) noexcept nogil:
    """Decode a canonical unsigned integer of at most 8 bytes (empty string is zero)."""
    cdef int code = rlp_uint(it, 8)
    if code == RLP_OK:
        out[0] = rlp_be64(it)
    return code


cdef inline str rlp_rule(int code):
    """The rule family an RLP_* code belongs to (the ``rule`` of the raised error)."""
    if RLP_WRAPPED_SINGLE_BYTE <= code <= RLP_INT_LEADING_ZERO:
        return "non-canonical RLP"
    if code == RLP_INT_TOO_LARGE:
        return "integer too large"
    return "malformed RLP"


cdef inline str rlp_reason(int code):
    """What exactly was wrong, for the error's ``reason`` value."""
    return (
        "ok",
        "unexpected end of input",
        "item length exceeds the input",
        "single byte below 0x80 wrapped in a string header",
        "long length form used for a payload under 56 bytes",
        "leading zero byte in a length",
        "leading zero byte in an integer",
        "trailing bytes after the item",
        "expected a list",
        "expected a byte string",
        "nesting too deep",
        "input too large",
        "integer wider than its field allows",
    )[code]
