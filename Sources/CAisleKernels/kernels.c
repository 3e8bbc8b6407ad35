#include "aisle_kernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AISLE_X86 1
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

const char *aisle_kernel_name(aisle_kernel kernel) {
    switch (kernel) {
    case AISLE_KERNEL_AVX2: return "avx2";
    case AISLE_KERNEL_AVX512_VNNI: return "avx512-vnni";
    case AISLE_KERNEL_NEON: return "neon";
    default: return "scalar";
    }
}

int aisle_kernel_available(aisle_kernel kernel) {
    switch (kernel) {
    case AISLE_KERNEL_SCALAR: return 1;
#ifdef AISLE_X86
    case AISLE_KERNEL_AVX2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2");
    case AISLE_KERNEL_AVX512_VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case AISLE_KERNEL_NEON: return 1;
#endif
    default: return 0;
    }
}

aisle_kernel aisle_kernel_best(void) {
    if (aisle_kernel_available(AISLE_KERNEL_AVX512_VNNI)) return AISLE_KERNEL_AVX512_VNNI;
    if (aisle_kernel_available(AISLE_KERNEL_AVX2)) return AISLE_KERNEL_AVX2;
    if (aisle_kernel_available(AISLE_KERNEL_NEON)) return AISLE_KERNEL_NEON;
    return AISLE_KERNEL_SCALAR;
}

static int32_t dot_scalar(const int8_t *a, const int8_t *b, int k) {
    int32_t s = 0;
    for (int i = 0; i < k; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

#ifdef AISLE_X86
// |a|·sign(b, a) keeps maddubs (unsigned × signed) exact: with both in [-127, 127] a pair sums
// to at most 2·127·127, inside int16.
__attribute__((target("avx2"))) static int32_t dot_avx2(const int8_t *a, const int8_t *b, int k) {
    __m256i acc = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + i));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(b + i));
        __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(va), _mm256_sign_epi8(vb, va));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    return _mm_cvtsi128_si32(s) + dot_scalar(a + i, b + i, k - i);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int32_t dot_avx512_vnni(const int8_t *a, const int8_t *b, int k) {
    __m512i acc = _mm512_setzero_si512();
    const __m512i zero = _mm512_setzero_si512();
    int i = 0;
    for (; i + 64 <= k; i += 64) {
        __m512i va = _mm512_loadu_si512((const void *)(a + i));
        __m512i vb = _mm512_loadu_si512((const void *)(b + i));
        __mmask64 negative = _mm512_movepi8_mask(va);
        __m512i signedB = _mm512_mask_sub_epi8(vb, negative, zero, vb);
        acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(va), signedB);
    }
    if (i < k) {
        __mmask64 tail = (k - i) == 64 ? ~(__mmask64)0 : (((__mmask64)1 << (k - i)) - 1);
        __m512i va = _mm512_maskz_loadu_epi8(tail, a + i);
        __m512i vb = _mm512_maskz_loadu_epi8(tail, b + i);
        __mmask64 negative = _mm512_movepi8_mask(va);
        __m512i signedB = _mm512_mask_sub_epi8(vb, negative, zero, vb);
        acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(va), signedB);
    }
    return _mm512_reduce_add_epi32(acc);
}
#endif

#if defined(__aarch64__)
static int32_t dot_neon(const int8_t *a, const int8_t *b, int k) {
    int32x4_t acc = vdupq_n_s32(0);
    int i = 0;
    for (; i + 16 <= k; i += 16) {
        int8x16_t va = vld1q_s8(a + i), vb = vld1q_s8(b + i);
        int16x8_t lo = vmull_s8(vget_low_s8(va), vget_low_s8(vb));
        int16x8_t hi = vmull_s8(vget_high_s8(va), vget_high_s8(vb));
        acc = vpadalq_s16(acc, lo);
        acc = vpadalq_s16(acc, hi);
    }
    return vaddvq_s32(acc) + dot_scalar(a + i, b + i, k - i);
}
#endif

#ifdef AISLE_X86
// Four rows of B against one row of A: each load of A serves four products, and the four
// horizontal sums happen once per output, at the end.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dot4_avx512_vnni(const int8_t *a, const int8_t *b, int k, int32_t *out) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    const __m512i zero = _mm512_setzero_si512();
    for (int i = 0; i < k; i += 64) {
        __mmask64 m = (k - i) >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (k - i)) - 1);
        __m512i va = _mm512_maskz_loadu_epi8(m, a + i);
        __mmask64 negative = _mm512_movepi8_mask(va);
        __m512i ua = _mm512_abs_epi8(va);
        __m512i b0 = _mm512_maskz_loadu_epi8(m, b + i), b1 = _mm512_maskz_loadu_epi8(m, b + k + i);
        __m512i b2 = _mm512_maskz_loadu_epi8(m, b + 2 * (long)k + i), b3 = _mm512_maskz_loadu_epi8(m, b + 3 * (long)k + i);
        acc0 = _mm512_dpbusd_epi32(acc0, ua, _mm512_mask_sub_epi8(b0, negative, zero, b0));
        acc1 = _mm512_dpbusd_epi32(acc1, ua, _mm512_mask_sub_epi8(b1, negative, zero, b1));
        acc2 = _mm512_dpbusd_epi32(acc2, ua, _mm512_mask_sub_epi8(b2, negative, zero, b2));
        acc3 = _mm512_dpbusd_epi32(acc3, ua, _mm512_mask_sub_epi8(b3, negative, zero, b3));
    }
    out[0] = _mm512_reduce_add_epi32(acc0);
    out[1] = _mm512_reduce_add_epi32(acc1);
    out[2] = _mm512_reduce_add_epi32(acc2);
    out[3] = _mm512_reduce_add_epi32(acc3);
}
#endif

void aisle_gemm_s8(aisle_kernel kernel, int m, int n, int k, const int8_t *a, const int8_t *b, int32_t *c) {
    int32_t (*dot)(const int8_t *, const int8_t *, int) = dot_scalar;
    void (*dot4)(const int8_t *, const int8_t *, int, int32_t *) = 0;
#ifdef AISLE_X86
    if (kernel == AISLE_KERNEL_AVX2) dot = dot_avx2;
    if (kernel == AISLE_KERNEL_AVX512_VNNI) { dot = dot_avx512_vnni; dot4 = dot4_avx512_vnni; }
#endif
#if defined(__aarch64__)
    if (kernel == AISLE_KERNEL_NEON) dot = dot_neon;
#endif
    // Blocked so that a panel of B's rows stays in cache while every row of A passes over it.
    const int panel = 64;
    for (int j0 = 0; j0 < n; j0 += panel) {
        int j1 = j0 + panel < n ? j0 + panel : n;
        for (int i = 0; i < m; i++) {
            const int8_t *row = a + (long)i * k;
            int32_t *out = c + (long)i * n;
            int j = j0;
            if (dot4) for (; j + 4 <= j1; j += 4) dot4(row, b + (long)j * k, k, out + j);
            for (; j < j1; j++) out[j] = dot(row, b + (long)j * k, k);
        }
    }
}

// ---- Packed B for the AVX-512 VNNI micro-kernel -------------------------------------------
// dpbusd multiplies unsigned bytes by signed ones, four at a time into each int32 lane. A row
// of A is shifted to unsigned (a + 128, a flip of the top bit) and broadcast four bytes at a
// time; B is packed so that one 64-byte load holds those four bytes for 16 rows of B. The
// shift adds 128 · Σ B[j] to every result, which the packed sums take back off.

long aisle_packed_size(int n, int k) { return (long)((n + 15) / 16) * 16 * ((k + 3) / 4) * 4; }

void aisle_pack_b(int n, int k, const int8_t *b, int8_t *packed, int32_t *sums) {
    int k4 = (k + 3) / 4, blocks = (n + 15) / 16;
    memset(packed, 0, (size_t)aisle_packed_size(n, k));
    for (int jb = 0; jb < blocks; jb++)
        for (int g = 0; g < k4; g++)
            for (int l = 0; l < 16; l++) {
                int j = jb * 16 + l;
                if (j >= n) continue;
                for (int t = 0; t < 4; t++) {
                    int kk = g * 4 + t;
                    if (kk < k) packed[(((long)jb * k4 + g) * 16 + l) * 4 + t] = b[(long)j * k + kk];
                }
            }
    for (int j = 0; j < n; j++) {
        int32_t s = 0;
        for (int kk = 0; kk < k; kk++) s += b[(long)j * k + kk];
        sums[j] = 128 * s;
    }
}

#ifdef AISLE_X86
// A tile of up to 4 rows of A × 4 blocks of 16 rows of B: per group of four bytes, 4 loads of B
// and 4 broadcasts of A feed 16 dot products held in registers.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void packed_tile(
    int rows, int nb, int k4, const uint8_t *a, int lda, const int8_t *p, __m512i acc[4][4]) {
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < 4; b++) acc[r][b] = _mm512_setzero_si512();
    for (int g = 0; g < k4; g++) {
        __m512i vb[4];
        for (int b = 0; b < nb; b++) vb[b] = _mm512_loadu_si512((const void *)(p + ((long)b * k4 + g) * 64));
        for (int r = 0; r < rows; r++) {
            int32_t four;
            memcpy(&four, a + (long)r * lda + g * 4, 4);
            __m512i va = _mm512_set1_epi32(four);
            for (int b = 0; b < nb; b++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], va, vb[b]);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void packed_rows(
    int rows, int n, int k4, const uint8_t *a, int lda, const int8_t *packed, const int32_t *sums, int32_t *c, int ldc) {
    int blocks = (n + 15) / 16;
    for (int jb = 0; jb < blocks; jb += 4) {
        int nb = blocks - jb < 4 ? blocks - jb : 4;
        __m512i acc[4][4];
        packed_tile(rows, nb, k4, a, lda, packed + (long)jb * k4 * 64, acc);
        for (int b = 0; b < nb; b++) {
            int col = (jb + b) * 16;
            int width = n - col < 16 ? n - col : 16;
            __mmask16 mask = width == 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
            __m512i s = _mm512_maskz_loadu_epi32(mask, sums + col);
            for (int r = 0; r < rows; r++) _mm512_mask_storeu_epi32(c + (long)r * ldc + col, mask, _mm512_sub_epi32(acc[r][b], s));
        }
    }
}
#endif

void aisle_gemm_s8_packed(int m, int n, int k, const int8_t *a, const int8_t *packed, const int32_t *sums, int32_t *c) {
#ifdef AISLE_X86
    int k4 = (k + 3) / 4, lda = k4 * 4;
    uint8_t shifted[4 * AISLE_PACKED_K_MAX];  // k ≤ AISLE_PACKED_K_MAX is the caller's contract
    for (int i = 0; i < m; i += 4) {
        int rows = m - i < 4 ? m - i : 4;
        memset(shifted, 128, (size_t)lda * 4);  // padding columns: 128 - 128 = 0 against zero-packed B
        for (int r = 0; r < rows; r++)
            for (int kk = 0; kk < k; kk++) shifted[r * lda + kk] = (uint8_t)(a[(long)(i + r) * k + kk] ^ 0x80);
        packed_rows(rows, n, k4, shifted, lda, packed, sums, c + (long)i * n, n);
    }
#else
    (void)m; (void)n; (void)k; (void)a; (void)packed; (void)sums; (void)c;
#endif
}

// ---- Activation quantisation and rescaling (plain C; the compiler vectorises the loops) ----

void aisle_quantize_rows(int rows, int cols, const float *x, int8_t *q, float *scales) {
    const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to nearest even
    for (int r = 0; r < rows; r++) {
        const float *in = x + (long)r * cols;
        int8_t *out = q + (long)r * cols;
        float m = 0;
        for (int i = 0; i < cols; i++) {
            float v = in[i] < 0 ? -in[i] : in[i];
            m = v > m ? v : m;
        }
        if (m == 0) {
            memset(out, 0, (size_t)cols);
            scales[r] = 0;
            continue;
        }
        float inverse = 127.0f / m;
        // Without -ffast-math the compiler may not fold (v + magic) - magic back to v.
        for (int i = 0; i < cols; i++) out[i] = (int8_t)(int32_t)((in[i] * inverse + magic) - magic);
        scales[r] = m / 127.0f;
    }
}

void aisle_rescale(int rows, int cols, const int32_t *acc, const float *rowScales, const float *colScales, const float *bias, float *y) {
    for (int r = 0; r < rows; r++) {
        float s = rowScales[r];
        const int32_t *a = acc + (long)r * cols;
        float *out = y + (long)r * cols;
        for (int o = 0; o < cols; o++) out[o] = (float)a[o] * (s * colScales[o]) + bias[o];
    }
}
