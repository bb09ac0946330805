# Declarations for include/keccak.h (header-only Keccak-256), shared by every kernel that hashes.
from libc.stdint cimport uint8_t

cdef extern from "keccak.h" nogil:
    ctypedef struct keccak256_ctx:
        pass
    void keccak256_init(keccak256_ctx *ctx)
    void keccak256_update(keccak256_ctx *ctx, const uint8_t *data, size_t length)
    void keccak256_final(keccak256_ctx *ctx, uint8_t *out)
    void keccak256(const uint8_t *data, size_t length, uint8_t *out)
