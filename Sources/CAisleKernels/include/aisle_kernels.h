// Int8 matrix kernels for the sentence encoder, one implementation per CPU family, chosen at
// run time. Every path computes exactly the same int32 results as the scalar one.
#ifndef AISLE_KERNELS_H
#define AISLE_KERNELS_H

#include <stdint.h>

typedef enum {
    AISLE_KERNEL_SCALAR = 0,
    AISLE_KERNEL_AVX2 = 1,
    AISLE_KERNEL_AVX512_VNNI = 2,
    AISLE_KERNEL_NEON = 3,
} aisle_kernel;

/// Whether this CPU (and this build) can run `kernel`.
int aisle_kernel_available(aisle_kernel kernel);

/// The fastest kernel available here.
aisle_kernel aisle_kernel_best(void);

/// The kernel's name: "scalar", "avx2", "avx512-vnni", "neon".
const char *aisle_kernel_name(aisle_kernel kernel);

/// C[m×n] = A[m×k] · B[n×k]ᵀ with int8 inputs in [-127, 127] and int32 results.
/// A and B are row-major with row strides `k`; C has row stride `n`. `kernel` must be available.
void aisle_gemm_s8(aisle_kernel kernel, int m, int n, int k, const int8_t *a, const int8_t *b, int32_t *c);

/// Quantises each of `rows` float rows of `cols` values symmetrically to int8 in [-127, 127]
/// (scale = max|x| / 127, round to nearest, ties to even); writes the scales (0 for a zero row).
void aisle_quantize_rows(int rows, int cols, const float *x, int8_t *q, float *scales);

/// y[r][o] = acc[r][o] · rowScales[r] · colScales[o] + bias[o].
void aisle_rescale(int rows, int cols, const int32_t *acc, const float *rowScales, const float *colScales, const float *bias, float *y);

/// The largest k the packed kernel takes.
#define AISLE_PACKED_K_MAX 2048

/// Bytes needed to pack a [n×k] int8 matrix B for ``aisle_gemm_s8_packed``.
long aisle_packed_size(int n, int k);

/// Packs B [n×k] (row-major) for the AVX-512 VNNI micro-kernel: per block of 16 rows of B and
/// group of 4 columns, 64 bytes (zero-padded), plus `sums[j] = 128 · Σₖ B[j][k]`.
void aisle_pack_b(int n, int k, const int8_t *b, int8_t *packed, int32_t *sums);

/// C[m×n] = A[m×k] · Bᵀ with B packed by ``aisle_pack_b``; AVX-512 VNNI only (check
/// ``aisle_kernel_available``) and k ≤ AISLE_PACKED_K_MAX. Same results as ``aisle_gemm_s8``.
void aisle_gemm_s8_packed(int m, int n, int k, const int8_t *a, const int8_t *packed, const int32_t *sums, int32_t *c);

#endif
