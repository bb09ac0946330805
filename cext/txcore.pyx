"""The per-transaction hot path: decode, stateless checks, hashing and sender recovery.

Everything between "here are the raw bytes" and "here are the hash, the sender and the verdict"
runs in ``_validate`` below, in C, without the GIL: strict RLP parsing into slices of the input,
the field rules, intrinsic gas, Keccak-256 of the envelope and of the signing payload (streamed,
never built), and libsecp256k1 recovery through raw function pointers taken from coincurve's
bundled library. Only building the result (a msgspec Struct) or the error touches Python, so
threads running this on separate cores scale.

Wire formats (EIP-2718 envelope: a first byte >= 0xC0 is a legacy RLP list, else a type byte):

* type 0, legacy:  rlp([nonce, gasPrice, gasLimit, to, value, data, v, r, s]); v is 27/28
  (pre-EIP-155, no chain id) or chainId * 2 + 35/36 (EIP-155).
* type 1, EIP-2930: 0x01 || rlp([chainId, nonce, gasPrice, gasLimit, to, value, data,
  accessList, yParity, r, s])
* type 2, EIP-1559: 0x02 || rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gasLimit,
  to, value, data, accessList, yParity, r, s])

The per-type field layout is data (``_LAYOUTS``), so decoding is one loop for all three types.
Other types (3 blob, 4 set-code) are rejected as "transaction type not supported".
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_FromUnsignedLongLong
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcmp, memcpy, memset

from keccak cimport keccak256, keccak256_ctx, keccak256_final, keccak256_init, keccak256_update
from rlpcore cimport (
    RLP_EOF, RLP_EXPECTED_LIST, RLP_EXPECTED_STRING, RLP_INT_TOO_LARGE, RLP_OK, RLP_TRAILING,
    RlpItem, rlp_be64, rlp_item, rlp_reason, rlp_rule, rlp_uint, rlp_uint64,
)

from alys_fast.validation.errors import InvalidTransaction

cdef extern from "Python.h":
    object _PyLong_FromByteArray(const unsigned char *data, size_t n, int little_endian,
                                 int is_signed)

cdef extern from "secp256k1_abi.h" nogil:
    ctypedef struct secp256k1_context:
        pass
    ctypedef struct secp256k1_pubkey:
        pass
    ctypedef struct secp256k1_ecdsa_recoverable_signature:
        pass
    ctypedef int (*secp256k1_recoverable_signature_parse_compact_fn)(
        const secp256k1_context *ctx, secp256k1_ecdsa_recoverable_signature *sig,
        const unsigned char *input64, int recid)
    ctypedef int (*secp256k1_ecdsa_recover_fn)(
        const secp256k1_context *ctx, secp256k1_pubkey *pubkey,
        const secp256k1_ecdsa_recoverable_signature *sig, const unsigned char *msghash32)
    ctypedef int (*secp256k1_ec_pubkey_serialize_fn)(
        const secp256k1_context *ctx, unsigned char *output, size_t *outputlen,
        const secp256k1_pubkey *pubkey, unsigned int flags)


# --- libsecp256k1, borrowed from coincurve ------------------------------------------------------

# The cffi objects own the library and the context; keeping them here keeps the pointers valid.
from coincurve._libsecp256k1 import ffi as _ffi, lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _GLOBAL_CONTEXT


cdef uintptr_t _address(object name):
    return int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, name)))


cdef const secp256k1_context *_ctx = <const secp256k1_context *> <uintptr_t> int(
    _ffi.cast("uintptr_t", _GLOBAL_CONTEXT.ctx))
cdef secp256k1_recoverable_signature_parse_compact_fn _parse_compact = (
    <secp256k1_recoverable_signature_parse_compact_fn> _address(
        "secp256k1_ecdsa_recoverable_signature_parse_compact"))
cdef secp256k1_ecdsa_recover_fn _recover = <secp256k1_ecdsa_recover_fn> _address(
    "secp256k1_ecdsa_recover")
cdef secp256k1_ec_pubkey_serialize_fn _serialize = <secp256k1_ec_pubkey_serialize_fn> _address(
    "secp256k1_ec_pubkey_serialize")
cdef unsigned int _UNCOMPRESSED = _lib.SECP256K1_EC_UNCOMPRESSED

# secp256k1 group order n and n / 2 (EIP-2: s must not exceed n / 2), big-endian.
cdef const uint8_t *_N = (
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe"
    b"\xba\xae\xdc\xe6\xaf\x48\xa0\x3b\xbf\xd2\x5e\x8c\xd0\x36\x41\x41")
cdef const uint8_t *_HALF_N = (
    b"\x7f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\x5d\x57\x6e\x73\x57\xa4\x50\x1d\xdf\xe9\x2f\x46\x68\x1b\x20\xa0")


cdef enum:  # Sig: signature check outcome
    SIG_OK = 0
    SIG_R_RANGE = 1
    SIG_S_ZERO = 2
    SIG_S_HIGH = 3
    SIG_RECOVERY = 4


cdef int _check_rs(const uint8_t *rs64) noexcept nogil:
    """Range rules on r || s (32 bytes each): 0 < r < n and 0 < s <= n / 2 (EIP-2 low s)."""
    cdef uint8_t zero[32]
    memset(zero, 0, 32)
    if memcmp(rs64, zero, 32) == 0 or memcmp(rs64, _N, 32) >= 0:
        return SIG_R_RANGE
    if memcmp(rs64 + 32, zero, 32) == 0:
        return SIG_S_ZERO
    if memcmp(rs64 + 32, _HALF_N, 32) > 0:
        return SIG_S_HIGH
    return SIG_OK


cdef int _recover_address(const uint8_t *rs64, int recid, const uint8_t *msg32,
                          uint8_t *address) noexcept nogil:
    """Recover the signer of ``msg32`` and write its 20-byte address; SIG_* code."""
    cdef secp256k1_ecdsa_recoverable_signature sig
    cdef secp256k1_pubkey pub
    cdef uint8_t out[65]
    cdef uint8_t digest[32]
    cdef size_t outlen = 65
    if not _parse_compact(_ctx, &sig, rs64, recid):
        return SIG_R_RANGE
    if not _recover(_ctx, &pub, &sig, msg32):
        return SIG_RECOVERY
    _serialize(_ctx, out, &outlen, &pub, _UNCOMPRESSED)
    keccak256(out + 1, 64, digest)
    memcpy(address, digest + 12, 20)
    return SIG_OK


def recover_address(msg_hash: bytes, signature: bytes) -> bytes:
    """Address that produced the 65-byte ``r || s || recid`` signature over a 32-byte hash.

    Applies the same range rules as transactions (low s), so a signature has one valid form.
    Raises ValueError naming the rule that failed.
    """
    cdef uint8_t address[20]
    cdef int code
    if len(msg_hash) != 32 or len(signature) != 65:
        raise ValueError(f"need a 32-byte hash and a 65-byte signature, got "
                         f"{len(msg_hash)} and {len(signature)} bytes")
    cdef const uint8_t *sig = <const uint8_t *> PyBytes_AS_STRING(signature)
    cdef const uint8_t *msg = <const uint8_t *> PyBytes_AS_STRING(msg_hash)
    if sig[64] > 1:
        raise ValueError(f"invalid signature recovery id: {sig[64]} (expected 0 or 1)")
    code = _check_rs(sig)
    if code == SIG_OK:
        with nogil:
            code = _recover_address(sig, sig[64], msg, address)
    if code != SIG_OK:
        raise ValueError(_SIG_RULES[code])
    return PyBytes_FromStringAndSize(<char *> address, 20)


# --- decoding and rules -------------------------------------------------------------------------

cdef enum:  # Field: index into TxCore.f
    F_CHAIN_ID, F_NONCE, F_GAS_PRICE, F_MAX_PRIORITY_FEE, F_MAX_FEE, F_GAS_LIMIT, F_TO, F_VALUE,
    F_DATA, F_ACCESS_LIST, F_V, F_R, F_S, N_FIELDS

_FIELD_NAMES = ("chain_id", "nonce", "gas_price", "max_priority_fee_per_gas", "max_fee_per_gas",
                "gas_limit", "to", "value", "data", "access_list", "v", "r", "s")

cdef int[3][12] _LAYOUTS = [
    [F_NONCE, F_GAS_PRICE, F_GAS_LIMIT, F_TO, F_VALUE, F_DATA, F_V, F_R, F_S, -1, -1, -1],
    [F_CHAIN_ID, F_NONCE, F_GAS_PRICE, F_GAS_LIMIT, F_TO, F_VALUE, F_DATA, F_ACCESS_LIST, F_V, F_R,
     F_S, -1],
    [F_CHAIN_ID, F_NONCE, F_MAX_PRIORITY_FEE, F_MAX_FEE, F_GAS_LIMIT, F_TO, F_VALUE, F_DATA,
     F_ACCESS_LIST, F_V, F_R, F_S],
]
cdef int[3] _FIELD_COUNTS = [9, 11, 12]

cdef enum:
    # Fork ordinals, matching alys_fast.validation.transactions.Fork.
    LONDON = 0
    SHANGHAI = 1
    CANCUN = 2
    PRAGUE = 3
    # Gas schedule.
    TX_GAS = 21000
    TX_CREATE_GAS = 32000
    TX_DATA_ZERO_GAS = 4              # EIP-2028
    TX_DATA_NONZERO_GAS = 16
    ACCESS_LIST_ADDRESS_GAS = 2400    # EIP-2930
    ACCESS_LIST_STORAGE_KEY_GAS = 1900
    INITCODE_WORD_GAS = 2             # EIP-3860
    MAX_INITCODE_SIZE = 49152
    FLOOR_TOKEN_GAS = 10              # EIP-7623: tokens = zero bytes + 4 * non-zero bytes

# Largest 64-bit value: the gas limit bound, and (EIP-2681) the first nonce that is not allowed.
cdef uint64_t MAX_U64 = 0xFFFFFFFFFFFFFFFFULL

cdef enum:  # Err: the failed rule
    E_OK = 0
    E_RLP                # detail: RLP_* code, field (or -1 for the envelope)
    E_TYPE
    E_FIELD_COUNT
    E_NONCE
    E_GAS_LIMIT
    E_RECIPIENT
    E_ACCESS_LIST        # detail: 0 entry shape, 1 address length, 2 storage key length
    E_CHAIN_ID
    E_Y_PARITY
    E_TIP_ABOVE_FEE
    E_FEE_OVERFLOW
    E_INITCODE
    E_INTRINSIC
    E_FLOOR
    E_SIGNATURE          # detail: SIG_* code

_RULES = ("ok", None, "transaction type not supported", "wrong number of fields",
          "nonce too high", "gas limit too high", "invalid recipient", "invalid access list",
          "invalid chain id", "invalid signature y parity", "priority fee above max fee",
          "gas limit times fee exceeds 256 bits", "initcode too large", "intrinsic gas too low",
          "gas limit below calldata floor", None)
_SIG_RULES = ("ok", "invalid signature r", "invalid signature s", "signature s too high",
              "signature recovery failed")
_ACCESS_LIST_REASONS = ("entry is not [address, [storage keys]]", "address is not 20 bytes",
                        "storage key is not 32 bytes")


cdef struct TxCore:
    int type
    const uint8_t *payload      # the outer list's payload
    RlpItem f[N_FIELDS]         # each present field's item, by Field
    uint64_t nonce
    uint64_t gas_limit
    uint64_t v                  # legacy: v as sent; typed: y parity
    uint64_t chain_id
    bint has_chain_id           # false only for pre-EIP-155 legacy transactions
    uint64_t intrinsic_gas
    uint64_t floor_gas
    uint8_t hash[32]
    uint8_t sender[20]
    int err
    int err_field
    int err_detail


cdef inline int _fail(TxCore *tx, int err, int field, int detail) noexcept nogil:
    tx.err = err
    tx.err_field = field
    tx.err_detail = detail
    return err


cdef inline int _be_cmp(const RlpItem *a, const RlpItem *b) noexcept nogil:
    """Compare two canonical big-endian integers (no leading zeros, so length decides first)."""
    if a.length != b.length:
        return -1 if a.length < b.length else 1
    return memcmp(a.data, b.data, a.length)


cdef bint _mul_overflows_256(const RlpItem *a, uint64_t m) noexcept nogil:
    """Whether the integer in ``a`` (<= 32 bytes) times ``m`` needs more than 256 bits."""
    cdef uint32_t limbs[8]
    cdef uint64_t lo = m & 0xFFFFFFFFULL, hi = m >> 32, t, carry_lo = 0, carry_hi = 0
    cdef uint64_t acc[10]
    cdef size_t i
    memset(limbs, 0, sizeof(limbs))
    for i in range(a.length):  # little-endian 32-bit limbs
        limbs[i // 4] |= (<uint32_t> a.data[a.length - 1 - i]) << (8 * (i % 4))
    memset(acc, 0, sizeof(acc))
    for i in range(8):
        t = <uint64_t> limbs[i] * lo + acc[i] + carry_lo
        acc[i] = t & 0xFFFFFFFFULL
        carry_lo = t >> 32
    acc[8] = carry_lo
    for i in range(8):
        t = <uint64_t> limbs[i] * hi + acc[i + 1] + carry_hi
        acc[i + 1] = t & 0xFFFFFFFFULL
        carry_hi = t >> 32
    acc[9] = carry_hi
    return acc[8] != 0 or acc[9] != 0


cdef int _decode_access_list(TxCore *tx, uint64_t *addresses, uint64_t *keys) noexcept nogil:
    """Check the access list's shape and count its addresses and storage keys."""
    cdef RlpItem entry, address, slots, key
    cdef const uint8_t *p = tx.f[F_ACCESS_LIST].data
    cdef size_t n = tx.f[F_ACCESS_LIST].length
    cdef const uint8_t *q
    cdef size_t m
    cdef int code
    while n:
        code = rlp_item(p, n, &entry)
        if code != RLP_OK:
            return _fail(tx, E_RLP, F_ACCESS_LIST, code)
        if not entry.is_list:
            return _fail(tx, E_ACCESS_LIST, F_ACCESS_LIST, 0)
        p += entry.total
        n -= entry.total
        code = rlp_item(entry.data, entry.length, &address)
        if code == RLP_OK:
            code = rlp_item(entry.data + address.total, entry.length - address.total, &slots)
        if code == RLP_EOF:  # fewer than two elements
            return _fail(tx, E_ACCESS_LIST, F_ACCESS_LIST, 0)
        if code != RLP_OK:
            return _fail(tx, E_RLP, F_ACCESS_LIST, code)
        if address.is_list or not slots.is_list or address.total + slots.total != entry.length:
            return _fail(tx, E_ACCESS_LIST, F_ACCESS_LIST, 0)
        if address.length != 20:
            return _fail(tx, E_ACCESS_LIST, F_ACCESS_LIST, 1)
        addresses[0] += 1
        q = slots.data
        m = slots.length
        while m:
            code = rlp_item(q, m, &key)
            if code != RLP_OK:
                return _fail(tx, E_RLP, F_ACCESS_LIST, code)
            if key.is_list or key.length != 32:
                return _fail(tx, E_ACCESS_LIST, F_ACCESS_LIST, 2)
            keys[0] += 1
            q += key.total
            m -= key.total
    return E_OK


cdef int _decode_fields(TxCore *tx, const uint8_t *raw, size_t n) noexcept nogil:
    """Envelope, list shape and per-field encoding rules, in wire order."""
    cdef RlpItem outer, extra
    cdef const uint8_t *p
    cdef size_t left
    cdef int i, field, code, count = 0, expected
    cdef const int *layout
    cdef const uint8_t *body = raw
    cdef size_t body_len = n
    if n and raw[0] < 0x80:  # EIP-2718 typed envelope
        tx.type = raw[0]
        if tx.type != 1 and tx.type != 2:
            return _fail(tx, E_TYPE, -1, tx.type)
        body = raw + 1
        body_len = n - 1
    else:
        tx.type = 0
    code = rlp_item(body, body_len, &outer)
    if code == RLP_OK and not outer.is_list:
        code = RLP_EXPECTED_LIST
    if code == RLP_OK and outer.total != body_len:
        code = RLP_TRAILING
    if code != RLP_OK:
        return _fail(tx, E_RLP, -1, code)
    tx.payload = outer.data
    layout = _LAYOUTS[tx.type]
    expected = _FIELD_COUNTS[tx.type]
    p = outer.data
    left = outer.length
    while left:
        if count >= expected:  # count the rest for the message, still checking their headers
            code = rlp_item(p, left, &extra)
            if code != RLP_OK:
                return _fail(tx, E_RLP, -1, code)
            count += 1
            p += extra.total
            left -= extra.total
            continue
        field = layout[count]
        code = rlp_item(p, left, &tx.f[field])
        if code != RLP_OK:
            return _fail(tx, E_RLP, field, code)
        p += tx.f[field].total
        left -= tx.f[field].total
        count += 1
    if count != expected:
        return _fail(tx, E_FIELD_COUNT, -1, count)
    for i in range(expected):
        field = layout[i]
        if field == F_NONCE:
            code = rlp_uint64(&tx.f[field], &tx.nonce)
            if code == RLP_INT_TOO_LARGE:
                return _fail(tx, E_NONCE, field, 0)
        elif field == F_GAS_LIMIT:
            code = rlp_uint64(&tx.f[field], &tx.gas_limit)
            if code == RLP_INT_TOO_LARGE:
                return _fail(tx, E_GAS_LIMIT, field, 0)
        elif field == F_V:
            code = rlp_uint64(&tx.f[field], &tx.v)
            if code == RLP_INT_TOO_LARGE:  # too wide to encode any supported chain id
                return _fail(tx, E_CHAIN_ID if tx.type == 0 else E_Y_PARITY, field, 0)
        elif field == F_R or field == F_S:
            code = rlp_uint(&tx.f[field], 32)
            if code == RLP_INT_TOO_LARGE:
                return _fail(tx, E_SIGNATURE, field,
                             SIG_R_RANGE if field == F_R else SIG_S_HIGH)
        elif field == F_TO or field == F_DATA:
            code = RLP_EXPECTED_STRING if tx.f[field].is_list else RLP_OK
            if code == RLP_OK and field == F_TO and tx.f[field].length != 0 \
                    and tx.f[field].length != 20:
                return _fail(tx, E_RECIPIENT, field, 0)
        elif field == F_ACCESS_LIST:
            code = RLP_OK if tx.f[field].is_list else RLP_EXPECTED_LIST
        else:  # chain id, value and fees: 256-bit integers
            code = rlp_uint(&tx.f[field], 32)
        if code != RLP_OK:
            return _fail(tx, E_RLP, field, code)
    return E_OK


cdef inline uint64_t _zero_bytes(const uint8_t *data, size_t length) noexcept nogil:
    cdef uint64_t zeros = 0
    cdef size_t i
    for i in range(length):
        zeros += data[i] == 0
    return zeros


cdef uint64_t _intrinsic_gas(size_t data_len, uint64_t zeros, uint64_t addresses, uint64_t keys,
                             bint create, int fork) noexcept nogil:
    """Gas charged before execution: base, calldata, access list, creation and initcode."""
    cdef uint64_t gas = (TX_GAS + zeros * TX_DATA_ZERO_GAS
                         + (data_len - zeros) * TX_DATA_NONZERO_GAS
                         + addresses * ACCESS_LIST_ADDRESS_GAS
                         + keys * ACCESS_LIST_STORAGE_KEY_GAS)
    if create:
        gas += TX_CREATE_GAS
        if fork >= SHANGHAI:
            gas += (data_len + 31) // 32 * INITCODE_WORD_GAS
    return gas


def intrinsic_gas(const uint8_t[::1] data, uint64_t access_addresses, uint64_t access_keys,
                  bint create, int fork):
    """Intrinsic gas of a transaction with this calldata and access list size (eth_estimateGas
    uses the very rule admission enforces)."""
    cdef size_t length = data.shape[0]
    cdef uint64_t zeros = _zero_bytes(&data[0], length) if length else 0
    return _intrinsic_gas(length, zeros, access_addresses, access_keys, create, fork)


cdef int _check_rules(TxCore *tx, uint64_t chain_id, int fork) noexcept nogil:
    """Value rules, chain id, fees and intrinsic gas (everything but the signature)."""
    cdef uint64_t addresses = 0, keys = 0, zeros
    cdef size_t data_len = tx.f[F_DATA].length
    cdef const uint8_t *data = tx.f[F_DATA].data
    cdef bint create = tx.f[F_TO].length == 0
    cdef const RlpItem *fee
    if tx.nonce == MAX_U64:
        return _fail(tx, E_NONCE, F_NONCE, 0)
    if tx.type == 0:
        if tx.v == 27 or tx.v == 28:
            tx.has_chain_id = False
        elif tx.v >= 35 and (tx.v - 35) // 2 == chain_id:
            tx.has_chain_id = True
            tx.chain_id = chain_id
        else:
            return _fail(tx, E_CHAIN_ID, F_V, 0)
    else:
        if tx.f[F_CHAIN_ID].length > 8 or rlp_be64(&tx.f[F_CHAIN_ID]) != chain_id:
            return _fail(tx, E_CHAIN_ID, F_CHAIN_ID, 0)
        tx.has_chain_id = True
        tx.chain_id = chain_id
        if tx.v > 1:
            return _fail(tx, E_Y_PARITY, F_V, 0)
    if tx.type == 2:
        if _be_cmp(&tx.f[F_MAX_PRIORITY_FEE], &tx.f[F_MAX_FEE]) > 0:
            return _fail(tx, E_TIP_ABOVE_FEE, F_MAX_PRIORITY_FEE, 0)
        fee = &tx.f[F_MAX_FEE]
    else:
        fee = &tx.f[F_GAS_PRICE]
    if _mul_overflows_256(fee, tx.gas_limit):
        return _fail(tx, E_FEE_OVERFLOW, F_GAS_LIMIT, 0)
    if create and fork >= SHANGHAI and data_len > MAX_INITCODE_SIZE:
        return _fail(tx, E_INITCODE, F_DATA, 0)
    if tx.type != 0 and _decode_access_list(tx, &addresses, &keys) != E_OK:
        return tx.err
    zeros = _zero_bytes(data, data_len)
    tx.intrinsic_gas = _intrinsic_gas(data_len, zeros, addresses, keys, create, fork)
    if tx.intrinsic_gas > tx.gas_limit:
        return _fail(tx, E_INTRINSIC, F_GAS_LIMIT, 0)
    tx.floor_gas = TX_GAS + (zeros + (data_len - zeros) * 4) * FLOOR_TOKEN_GAS
    if fork >= PRAGUE and tx.floor_gas > tx.gas_limit:
        return _fail(tx, E_FLOOR, F_GAS_LIMIT, 0)
    return E_OK


cdef inline size_t _put_header(uint8_t *out, size_t length) noexcept nogil:
    """Write an RLP list header for ``length`` payload bytes; return its size (1..9)."""
    cdef size_t nbytes = 0, v = length, i
    if length < 56:
        out[0] = 0xC0 + length
        return 1
    while v:
        nbytes += 1
        v >>= 8
    out[0] = 0xF7 + nbytes
    for i in range(nbytes):
        out[nbytes - i] = (length >> (8 * i)) & 0xFF
    return 1 + nbytes


cdef void _signing_hash(const TxCore *tx, uint8_t *out) noexcept nogil:
    """Keccak of the signing payload, streamed as header + unsigned fields + EIP-155 suffix.

    The unsigned fields are a prefix of the signed list's payload (everything before v), so the
    payload is never copied; only its header and, for EIP-155, rlp(chain_id) 0x80 0x80 are new.
    """
    cdef keccak256_ctx ctx
    cdef uint8_t head[10]
    cdef uint8_t suffix[11]
    cdef const RlpItem *v = &tx.f[F_V]
    cdef size_t prefix = (v.data + v.length - v.total) - tx.payload  # up to v's header
    cdef size_t slen = 0, hlen = 0, nbytes = 0, i
    cdef uint64_t c = tx.chain_id
    if tx.type == 0 and tx.has_chain_id:
        if 0 < c < 0x80:
            suffix[0] = <uint8_t> c
            slen = 1
        else:
            while c:
                nbytes += 1
                c >>= 8
            suffix[0] = 0x80 + nbytes
            for i in range(nbytes):
                suffix[nbytes - i] = (tx.chain_id >> (8 * i)) & 0xFF
            slen = 1 + nbytes
        suffix[slen] = 0x80
        suffix[slen + 1] = 0x80
        slen += 2
    if tx.type != 0:
        head[0] = <uint8_t> tx.type
        hlen = 1
    hlen += _put_header(head + hlen, prefix + slen)
    keccak256_init(&ctx)
    keccak256_update(&ctx, head, hlen)
    keccak256_update(&ctx, tx.payload, prefix)
    keccak256_update(&ctx, suffix, slen)
    keccak256_final(&ctx, out)


cdef int _validate(const uint8_t *raw, size_t n, uint64_t chain_id, int fork,
                   TxCore *tx, const uint8_t *sender=NULL) noexcept nogil:
    """Run every stateless rule on ``raw``; fill ``tx`` and return E_OK or the failing rule.

    With ``sender`` (20 bytes, recovered from this very transaction elsewhere) the signature's
    range is still checked but the costly public-key recovery is skipped.
    """
    cdef uint8_t rs[64]
    cdef uint8_t sighash[32]
    cdef int recid, code
    memset(tx, 0, sizeof(TxCore))
    if _decode_fields(tx, raw, n) != E_OK or _check_rules(tx, chain_id, fork) != E_OK:
        return tx.err
    memset(rs, 0, 64)
    memcpy(rs + 32 - tx.f[F_R].length, tx.f[F_R].data, tx.f[F_R].length)
    memcpy(rs + 64 - tx.f[F_S].length, tx.f[F_S].data, tx.f[F_S].length)
    code = _check_rs(rs)
    if code != SIG_OK:
        return _fail(tx, E_SIGNATURE, F_R if code == SIG_R_RANGE else F_S, code)
    if sender != NULL:
        memcpy(tx.sender, sender, 20)
    else:
        recid = <int> ((tx.v - 35) % 2 if tx.type == 0 and tx.has_chain_id
                       else (tx.v - 27 if tx.type == 0 else tx.v))
        _signing_hash(tx, sighash)
        code = _recover_address(rs, recid, sighash, tx.sender)
        if code != SIG_OK:
            return _fail(tx, E_SIGNATURE, F_R, code)
    keccak256(raw, n, tx.hash)
    return E_OK


# --- results ------------------------------------------------------------------------------------

# {type: Struct class}, filled by alys_fast.validation.transactions via bind().
cdef object _TYPES = None


def bind(types: dict) -> None:
    """Register the result classes, one per transaction type (see transactions.py)."""
    global _TYPES
    if sorted(types) != [0, 1, 2]:
        raise ValueError(f"need result classes for types 0, 1 and 2, got {sorted(types)}")
    _TYPES = (types[0], types[1], types[2])


cdef inline object _bytes(const RlpItem *it):
    return PyBytes_FromStringAndSize(<const char *> it.data, it.length)


cdef inline object _int(const RlpItem *it):
    if it.length <= 8:
        return PyLong_FromUnsignedLongLong(rlp_be64(it))
    return _PyLong_FromByteArray(it.data, it.length, 0, 0)


cdef tuple _access_list(const RlpItem *it):
    """Build ((address, (key, ...)), ...) from an access list already checked by the core."""
    cdef RlpItem entry, address, slots, key
    cdef const uint8_t *p = it.data
    cdef size_t n = it.length
    cdef const uint8_t *q
    cdef size_t m
    cdef list out = [], ks
    while n:
        rlp_item(p, n, &entry)
        rlp_item(entry.data, entry.length, &address)
        rlp_item(entry.data + address.total, entry.length - address.total, &slots)
        ks = []
        q = slots.data
        m = slots.length
        while m:
            rlp_item(q, m, &key)
            ks.append(_bytes(&key))
            q += key.total
            m -= key.total
        out.append((_bytes(&address), tuple(ks)))
        p += entry.total
        n -= entry.total
    return tuple(out)


cdef object _result(const TxCore *tx, object raw):
    cdef object cls = _TYPES[tx.type]
    common = (
        raw,
        PyBytes_FromStringAndSize(<const char *> tx.hash, 32),
        PyBytes_FromStringAndSize(<const char *> tx.sender, 20),
        PyLong_FromUnsignedLongLong(tx.intrinsic_gas),
        PyLong_FromUnsignedLongLong(tx.chain_id) if tx.has_chain_id else None,
        PyLong_FromUnsignedLongLong(tx.nonce),
        PyLong_FromUnsignedLongLong(tx.gas_limit),
        _bytes(&tx.f[F_TO]) if tx.f[F_TO].length else None,
        _int(&tx.f[F_VALUE]),
        _bytes(&tx.f[F_DATA]),
        PyLong_FromUnsignedLongLong(tx.v),
        _int(&tx.f[F_R]),
        _int(&tx.f[F_S]),
    )
    if tx.type == 0:
        return cls(*common, _int(&tx.f[F_GAS_PRICE]))
    if tx.type == 1:
        return cls(*common, _int(&tx.f[F_GAS_PRICE]), _access_list(&tx.f[F_ACCESS_LIST]))
    return cls(*common, _int(&tx.f[F_MAX_PRIORITY_FEE]), _int(&tx.f[F_MAX_FEE]),
               _access_list(&tx.f[F_ACCESS_LIST]))


cdef object _error(const TxCore *tx, uint64_t chain_id):
    """The InvalidTransaction for a failed core run, with the values that broke the rule."""
    cdef int err = tx.err
    cdef object name = _FIELD_NAMES[tx.err_field] if tx.err_field >= 0 else None
    cdef const RlpItem *item = NULL
    if tx.err_field >= 0:
        item = &tx.f[tx.err_field]
    if err == E_RLP:
        if name is None:
            return InvalidTransaction(rlp_rule(tx.err_detail), reason=rlp_reason(tx.err_detail))
        return InvalidTransaction(rlp_rule(tx.err_detail), field=name,
                                  reason=rlp_reason(tx.err_detail))
    if err == E_SIGNATURE:
        if tx.err_detail == SIG_RECOVERY:
            return InvalidTransaction(_SIG_RULES[SIG_RECOVERY], r=_int(&tx.f[F_R]),
                                      s=_int(&tx.f[F_S]))
        return InvalidTransaction(_SIG_RULES[tx.err_detail], **{name: _int(item)})
    if err == E_TYPE:
        return InvalidTransaction(_RULES[err], type=tx.err_detail)
    if err == E_FIELD_COUNT:
        return InvalidTransaction(_RULES[err], type=tx.type, expected=_FIELD_COUNTS[tx.type],
                                  got=tx.err_detail)
    if err == E_NONCE:
        return InvalidTransaction(_RULES[err], nonce=_int(item), limit=MAX_U64 - 1)
    if err == E_GAS_LIMIT:
        return InvalidTransaction(_RULES[err], gas_limit=_int(item), limit=MAX_U64)
    if err == E_RECIPIENT:
        return InvalidTransaction(_RULES[err], to=_bytes(item), length=item.length)
    if err == E_ACCESS_LIST:
        return InvalidTransaction(_RULES[err], reason=_ACCESS_LIST_REASONS[tx.err_detail])
    if err == E_CHAIN_ID:
        return InvalidTransaction(_RULES[err], **{name: _int(item)}, expected_chain_id=chain_id)
    if err == E_Y_PARITY:
        return InvalidTransaction(_RULES[err], v=_int(item))
    if err == E_TIP_ABOVE_FEE:
        return InvalidTransaction(_RULES[err], max_priority_fee_per_gas=_int(item),
                                  max_fee_per_gas=_int(&tx.f[F_MAX_FEE]))
    if err == E_FEE_OVERFLOW:
        fee_field = F_MAX_FEE if tx.type == 2 else F_GAS_PRICE
        return InvalidTransaction(_RULES[err], gas_limit=tx.gas_limit,
                                  **{_FIELD_NAMES[fee_field]: _int(&tx.f[fee_field])})
    if err == E_INITCODE:
        return InvalidTransaction(_RULES[err], size=item.length, limit=MAX_INITCODE_SIZE)
    if err == E_INTRINSIC:
        return InvalidTransaction(_RULES[err], intrinsic_gas=tx.intrinsic_gas,
                                  gas_limit=tx.gas_limit)
    if err == E_FLOOR:
        return InvalidTransaction(_RULES[err], floor_gas=tx.floor_gas, gas_limit=tx.gas_limit)
    raise AssertionError(f"unhandled validation error code {err}")


cdef inline const uint8_t *_bytes_ptr(object raw, size_t *n) except NULL:
    if type(raw) is not bytes:
        raise TypeError(f"raw transaction must be bytes, not {type(raw).__name__}")
    n[0] = PyBytes_GET_SIZE(raw)
    return <const uint8_t *> PyBytes_AS_STRING(raw)


def recover(raw, uint64_t chain_id, int fork):
    """Validate one raw transaction; return its result object or raise InvalidTransaction."""
    cdef TxCore tx
    cdef size_t n
    cdef const uint8_t *p = _bytes_ptr(raw, &n)
    with nogil:
        _validate(p, n, chain_id, fork, &tx)
    if tx.err != E_OK:
        raise _error(&tx, chain_id)
    return _result(&tx, raw)


def with_sender(raw, bytes sender, uint64_t chain_id, int fork):
    """The result object of a transaction whose ``sender`` was recovered elsewhere (another
    process ran :func:`recover` on the same bytes): every rule but the recovery runs again."""
    cdef TxCore tx
    cdef size_t n
    cdef const uint8_t *p = _bytes_ptr(raw, &n)
    if len(sender) != 20:
        raise ValueError(f"a sender is 20 bytes, got {len(sender)}")
    _validate(p, n, chain_id, fork, &tx, <const uint8_t *> sender)
    if tx.err != E_OK:
        raise _error(&tx, chain_id)
    return _result(&tx, raw)


cdef enum:
    # Transactions validated per GIL release in a batch: long enough that handing the GIL
    # between threads is rare, short enough that results are built while the inputs are hot.
    CHUNK = 16


def recover_into(list raws, list out, Py_ssize_t start, Py_ssize_t step, uint64_t chain_id,
                 int fork) -> None:
    """Validate ``raws[start::step]`` into the same slots of ``out`` (result or error object).

    The C part runs without the GIL, CHUNK transactions at a time, so calls from several threads
    on disjoint strides run their libsecp256k1 work in parallel. ``raws`` keeps the inputs alive.
    """
    cdef TxCore txs[CHUNK]
    cdef const uint8_t *ptrs[CHUNK]
    cdef size_t lens[CHUNK]
    cdef Py_ssize_t slots[CHUNK]
    cdef Py_ssize_t i = start, end = len(raws), k, m
    while i < end:
        m = 0
        while m < CHUNK and i < end:
            ptrs[m] = _bytes_ptr(raws[i], &lens[m])
            slots[m] = i
            m += 1
            i += step
        with nogil:
            for k in range(m):
                _validate(ptrs[k], lens[k], chain_id, fork, &txs[k])
        for k in range(m):
            if txs[k].err == E_OK:
                out[slots[k]] = _result(&txs[k], raws[slots[k]])
            else:
                out[slots[k]] = _error(&txs[k], chain_id)
