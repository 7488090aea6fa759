/* quant.c — dequantizing ggml's block-quantized tensor types to float32, for
 * GGUF checkpoints (gguf.c). Written from the block layouts of ggml's
 * ggml-common.h and the reference dequantizers of ggml-quants.c; the
 * arithmetic is the same float32 operations in the same order, so the
 * values are the ones llama.cpp computes (tests/test_gguf.py checks them
 * against an independent numpy decoder, bit for bit).
 *
 * Blocks (little-endian, f16 = IEEE binary16; QK_K = 256):
 *   Q8_0 (32 values, 34 bytes): f16 d, int8 q[32];          x = q * d
 *   Q4_0 (32 values, 18 bytes): f16 d, u8 qs[16];           x[j] = ((qs[j] & 15) - 8) * d,
 *                                                           x[j+16] = ((qs[j] >> 4) - 8) * d
 *   Q4_K (256 values, 144 bytes): f16 d, f16 dmin, u8 scales[12], u8 qs[128];
 *       8 sub-blocks of 32 with 6-bit scale sc and min m packed in scales;
 *       for each 64 values (chunk c = 0..3): the low nibbles of qs[32c..32c+31]
 *       are sub-block 2c, the high nibbles sub-block 2c+1;
 *       x = (d * sc) * q - (dmin * m)
 *   Q6_K (256 values, 210 bytes): u8 ql[128], u8 qh[64], int8 scales[16], f16 d;
 *       6-bit q = 4 low bits from ql, 2 high bits from qh, minus 32;
 *       16 sub-blocks of 16 with an int8 scale; x = (d * scale) * q
 *
 * Why separate statements: a compiler allowed to contract a*b - c into one
 * fused multiply-add (clang's default) would round once instead of twice and
 * differ from ggml in the last bit.
 */
#include "gguf.h"

#include <string.h>

static float f16_at(const uint8_t *p)
{
    return strata_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void dq_q8_0(float *y, const uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        const float d = f16_at(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
    }
}

static void dq_q4_0(float *y, const uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        const float d = f16_at(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/* Scale and min of sub-block j (0..7) from the 12 packed bytes: j < 4 in
 * the low 6 bits of bytes j and j+4; j >= 4 split into 4 low bits (byte j+4)
 * and 2 high bits (the top bits of bytes j-4 and j). */
static void k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void dq_q4_k(float *y, const uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            k4_scale_min(2 * c, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            k4_scale_min(2 * c + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                const float t = d1 * (float)(q[l] & 0x0F);
                *y++ = t - m1;
            }
            for (int l = 0; l < 32; l++) {
                const float t = d2 * (float)(q[l] >> 4);
                *y++ = t - m2;
            }
        }
    }
}

static void dq_q6_k(float *y, const uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const float d = f16_at(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0 & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2 & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32;
                const float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2];
                const float s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
                y[l] = s1 * (float)q1;
                y[l + 32] = s2 * (float)q2;
                y[l + 64] = s3 * (float)q3;
                y[l + 96] = s4 * (float)q4;
            }
        }
    }
}

bool strata_quant_supported(uint32_t type)
{
    return type == GGML_Q8_0 || type == GGML_Q4_0 || type == GGML_Q4_K || type == GGML_Q6_K;
}

void strata_dequantize(float *dst, const void *src, uint32_t type, int64_t n)
{
    const uint8_t *b = src;
    switch (type) {
    case GGML_Q8_0: STRATA_ASSERT(n % 32 == 0); dq_q8_0(dst, b, n / 32); return;
    case GGML_Q4_0: STRATA_ASSERT(n % 32 == 0); dq_q4_0(dst, b, n / 32); return;
    case GGML_Q4_K: STRATA_ASSERT(n % 256 == 0); dq_q4_k(dst, b, n / 256); return;
    case GGML_Q6_K: STRATA_ASSERT(n % 256 == 0); dq_q6_k(dst, b, n / 256); return;
    default: break;
    }
    STRATA_ASSERT(!"strata_dequantize: not a supported block type");
}
