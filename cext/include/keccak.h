/*
 * Keccak-256 (the original Keccak padding 0x01...0x80 that Ethereum uses, not SHA3-256's 0x06).
 *
 * Written from the Keccak reference (FIPS 202 section 3, Keccak team's "Keccak reference 3.0"):
 * a 5x5 state of 64-bit lanes A[x + 5y], 24 rounds of theta, rho+pi, chi, iota, rate 136 bytes
 * (capacity 512 bits). Round constants come from the spec's LFSR and rotation offsets from the
 * (t+1)(t+2)/2 walk; both are tabulated below. Everything is header-only and GIL-free so the
 * Cython hot path can hash without touching Python objects.
 *
 * Two entry points: keccak256() for one contiguous buffer and a streaming context
 * (init/update/final) so a signing payload can be hashed as header + slice + suffix without
 * building it in memory.
 */
#ifndef ALYS_KECCAK_H
#define ALYS_KECCAK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KECCAK256_RATE 136

static const uint64_t keccak_round_constants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

#define KECCAK_ROL(v, n) (((v) << (n)) | ((v) >> ((64 - (n)) & 63)))

/*
 * One round from lanes S0..S24 (S[x + 5y]) into D0..D24, written out so the 25 lanes live in
 * registers. Per output row Y, B[X] = rot(S[x, X] ^ D[x], r[x][X]) with x = 3(Y - 3X) mod 5
 * (pi inverted: B[y, 2x + 3y] = rot(A[x, y])), then chi across the row; iota on lane 0.
 * Rotation offsets r[x][y] (row y = 0..4): {0,1,62,28,27} {36,44,6,55,20} {3,10,43,25,39}
 * {41,45,15,21,8} {18,2,61,56,14}.
 */
#define KECCAK_ROUND(S, D, rc) \
    c0 = S##0 ^ S##5 ^ S##10 ^ S##15 ^ S##20; \
    c1 = S##1 ^ S##6 ^ S##11 ^ S##16 ^ S##21; \
    c2 = S##2 ^ S##7 ^ S##12 ^ S##17 ^ S##22; \
    c3 = S##3 ^ S##8 ^ S##13 ^ S##18 ^ S##23; \
    c4 = S##4 ^ S##9 ^ S##14 ^ S##19 ^ S##24; \
    d0 = c4 ^ KECCAK_ROL(c1, 1); d1 = c0 ^ KECCAK_ROL(c2, 1); d2 = c1 ^ KECCAK_ROL(c3, 1); \
    d3 = c2 ^ KECCAK_ROL(c4, 1); d4 = c3 ^ KECCAK_ROL(c0, 1); \
    b0 = S##0 ^ d0; b1 = KECCAK_ROL(S##6 ^ d1, 44); b2 = KECCAK_ROL(S##12 ^ d2, 43); \
    b3 = KECCAK_ROL(S##18 ^ d3, 21); b4 = KECCAK_ROL(S##24 ^ d4, 14); \
    D##0 = b0 ^ (~b1 & b2); D##1 = b1 ^ (~b2 & b3); D##2 = b2 ^ (~b3 & b4); \
    D##3 = b3 ^ (~b4 & b0); D##4 = b4 ^ (~b0 & b1); \
    b0 = KECCAK_ROL(S##3 ^ d3, 28); b1 = KECCAK_ROL(S##9 ^ d4, 20); b2 = KECCAK_ROL(S##10 ^ d0, 3); \
    b3 = KECCAK_ROL(S##16 ^ d1, 45); b4 = KECCAK_ROL(S##22 ^ d2, 61); \
    D##5 = b0 ^ (~b1 & b2); D##6 = b1 ^ (~b2 & b3); D##7 = b2 ^ (~b3 & b4); \
    D##8 = b3 ^ (~b4 & b0); D##9 = b4 ^ (~b0 & b1); \
    b0 = KECCAK_ROL(S##1 ^ d1, 1); b1 = KECCAK_ROL(S##7 ^ d2, 6); b2 = KECCAK_ROL(S##13 ^ d3, 25); \
    b3 = KECCAK_ROL(S##19 ^ d4, 8); b4 = KECCAK_ROL(S##20 ^ d0, 18); \
    D##10 = b0 ^ (~b1 & b2); D##11 = b1 ^ (~b2 & b3); D##12 = b2 ^ (~b3 & b4); \
    D##13 = b3 ^ (~b4 & b0); D##14 = b4 ^ (~b0 & b1); \
    b0 = KECCAK_ROL(S##4 ^ d4, 27); b1 = KECCAK_ROL(S##5 ^ d0, 36); b2 = KECCAK_ROL(S##11 ^ d1, 10); \
    b3 = KECCAK_ROL(S##17 ^ d2, 15); b4 = KECCAK_ROL(S##23 ^ d3, 56); \
    D##15 = b0 ^ (~b1 & b2); D##16 = b1 ^ (~b2 & b3); D##17 = b2 ^ (~b3 & b4); \
    D##18 = b3 ^ (~b4 & b0); D##19 = b4 ^ (~b0 & b1); \
    b0 = KECCAK_ROL(S##2 ^ d2, 62); b1 = KECCAK_ROL(S##8 ^ d3, 55); b2 = KECCAK_ROL(S##14 ^ d4, 39); \
    b3 = KECCAK_ROL(S##15 ^ d0, 41); b4 = KECCAK_ROL(S##21 ^ d1, 2); \
    D##20 = b0 ^ (~b1 & b2); D##21 = b1 ^ (~b2 & b3); D##22 = b2 ^ (~b3 & b4); \
    D##23 = b3 ^ (~b4 & b0); D##24 = b4 ^ (~b0 & b1); \
    D##0 ^= (rc)

/* With BMI's andn the chi step is one instruction; GCC builds both and picks at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define KECCAK_DISPATCH __attribute__((target_clones("bmi", "default")))
#else
#define KECCAK_DISPATCH
#endif

KECCAK_DISPATCH static void keccak_f1600(uint64_t st[25]) {
    uint64_t a0 = st[0], a1 = st[1], a2 = st[2], a3 = st[3], a4 = st[4];
    uint64_t a5 = st[5], a6 = st[6], a7 = st[7], a8 = st[8], a9 = st[9];
    uint64_t a10 = st[10], a11 = st[11], a12 = st[12], a13 = st[13], a14 = st[14];
    uint64_t a15 = st[15], a16 = st[16], a17 = st[17], a18 = st[18], a19 = st[19];
    uint64_t a20 = st[20], a21 = st[21], a22 = st[22], a23 = st[23], a24 = st[24];
    uint64_t e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12;
    uint64_t e13, e14, e15, e16, e17, e18, e19, e20, e21, e22, e23, e24;
    uint64_t c0, c1, c2, c3, c4, d0, d1, d2, d3, d4, b0, b1, b2, b3, b4;
    for (int round = 0; round < 24; round += 2) {
        KECCAK_ROUND(a, e, keccak_round_constants[round]);
        KECCAK_ROUND(e, a, keccak_round_constants[round + 1]);
    }
    st[0] = a0; st[1] = a1; st[2] = a2; st[3] = a3; st[4] = a4;
    st[5] = a5; st[6] = a6; st[7] = a7; st[8] = a8; st[9] = a9;
    st[10] = a10; st[11] = a11; st[12] = a12; st[13] = a13; st[14] = a14;
    st[15] = a15; st[16] = a16; st[17] = a17; st[18] = a18; st[19] = a19;
    st[20] = a20; st[21] = a21; st[22] = a22; st[23] = a23; st[24] = a24;
}

static inline uint64_t keccak_load64_le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void keccak_absorb_block(uint64_t a[25], const uint8_t *block) {
    for (int i = 0; i < KECCAK256_RATE / 8; i++) a[i] ^= keccak_load64_le(block + 8 * i);
    keccak_f1600(a);
}

typedef struct {
    uint64_t a[25];
    uint8_t buf[KECCAK256_RATE];
    size_t pos; /* bytes pending in buf, always < rate */
} keccak256_ctx;

static inline void keccak256_init(keccak256_ctx *ctx) {
    memset(ctx->a, 0, sizeof ctx->a);
    ctx->pos = 0;
}

static inline void keccak256_update(keccak256_ctx *ctx, const uint8_t *in, size_t len) {
    if (ctx->pos) {
        size_t take = KECCAK256_RATE - ctx->pos;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->pos, in, take);
        ctx->pos += take;
        in += take;
        len -= take;
        if (ctx->pos < KECCAK256_RATE) return;
        keccak_absorb_block(ctx->a, ctx->buf);
        ctx->pos = 0;
    }
    while (len >= KECCAK256_RATE) {
        keccak_absorb_block(ctx->a, in);
        in += KECCAK256_RATE;
        len -= KECCAK256_RATE;
    }
    memcpy(ctx->buf, in, len);
    ctx->pos = len;
}

static inline void keccak256_final(keccak256_ctx *ctx, uint8_t out[32]) {
    memset(ctx->buf + ctx->pos, 0, KECCAK256_RATE - ctx->pos);
    ctx->buf[ctx->pos] ^= 0x01;
    ctx->buf[KECCAK256_RATE - 1] ^= 0x80;
    keccak_absorb_block(ctx->a, ctx->buf);
    for (int i = 0; i < 4; i++) {
        uint64_t v = ctx->a[i];
        for (int j = 0; j < 8; j++) out[8 * i + j] = (uint8_t)(v >> (8 * j));
    }
}

static inline void keccak256(const uint8_t *in, size_t len, uint8_t out[32]) {
    keccak256_ctx ctx;
    keccak256_init(&ctx);
    keccak256_update(&ctx, in, len);
    keccak256_final(&ctx, out);
}

#endif /* ALYS_KECCAK_H */
