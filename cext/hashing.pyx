"""Keccak-256 for Python callers, backed by the header-only C core in ``include/keccak.h``."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t

from keccak cimport keccak256 as _keccak256

cdef enum:
    # Above this size the digest is computed without the GIL so other threads can run meanwhile.
    NOGIL_THRESHOLD = 4096


cdef inline void _digest(const uint8_t *p, size_t n, uint8_t *out) noexcept:
    if n >= NOGIL_THRESHOLD:
        with nogil:
            _keccak256(p, n, out)
    else:
        _keccak256(p, n, out)


def keccak256(data) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data`` (bytes or any contiguous buffer)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 32)
    cdef uint8_t *dst = <uint8_t *> PyBytes_AS_STRING(out)
    cdef Py_buffer view
    if type(data) is bytes:  # the common case: no buffer protocol round trip
        _digest(<const uint8_t *> PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), dst)
        return out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        _digest(<const uint8_t *> view.buf, view.len, dst)
    finally:
        PyBuffer_Release(&view)
    return out
