/*
 * The slice of libsecp256k1's public ABI that the validation core calls.
 *
 * We do not link libsecp256k1 ourselves: coincurve ships it inside a cffi module, and
 * txcore.pyx reads the addresses of these functions (and coincurve's context) from there at
 * import time. The struct layouts are opaque to callers (64 and 65 bytes, as in secp256k1.h);
 * the signatures match secp256k1.h / secp256k1_recovery.h.
 */
#ifndef ALYS_SECP256K1_ABI_H
#define ALYS_SECP256K1_ABI_H

#include <stddef.h>

typedef struct secp256k1_context_struct secp256k1_context;
typedef struct { unsigned char data[64]; } secp256k1_pubkey;
typedef struct { unsigned char data[65]; } secp256k1_ecdsa_recoverable_signature;

typedef int (*secp256k1_recoverable_signature_parse_compact_fn)(
    const secp256k1_context *ctx, secp256k1_ecdsa_recoverable_signature *sig,
    const unsigned char *input64, int recid);
typedef int (*secp256k1_ecdsa_recover_fn)(
    const secp256k1_context *ctx, secp256k1_pubkey *pubkey,
    const secp256k1_ecdsa_recoverable_signature *sig, const unsigned char *msghash32);
typedef int (*secp256k1_ec_pubkey_serialize_fn)(
    const secp256k1_context *ctx, unsigned char *output, size_t *outputlen,
    const secp256k1_pubkey *pubkey, unsigned int flags);

#endif /* ALYS_SECP256K1_ABI_H */
