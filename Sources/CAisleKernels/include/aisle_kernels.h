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

/// Rows of A the packed kernel computes at once.
#define AISLE_ROW_TILE 6

/// Bytes needed to pack a [n×k] int8 matrix B for the packed kernel.
long aisle_packed_size(int n, int k);

/// Packs B [n×k] (row-major) for the AVX-512 VNNI micro-kernel: per block of 16 rows of B and
/// group of 4 columns, 64 bytes; rows padded with zeros to a multiple of 64; and
/// `sums[j] = 128 · Σₖ B[j][k]` (`sums` has room for n rounded up to 64).
void aisle_pack_b(int n, int k, const int8_t *b, int8_t *packed, int32_t *sums);

/// Bytes of the packed kernel's A operand for m rows of k.
long aisle_shifted_size(int m, int k);

/// Writes A [m×k] as the packed kernel reads it: unsigned (a ^ 0x80), rows of k rounded up to
/// 4, row count rounded up to AISLE_ROW_TILE, padding 0x80.
void aisle_shift_rows(int m, int k, const int8_t *a, uint8_t *shifted);

/// What the dense layer does with each result v: y = v, y = gelu(v) or y += v.
typedef enum {
    AISLE_EPILOGUE_STORE = 0,
    AISLE_EPILOGUE_GELU = 1,
    AISLE_EPILOGUE_ACCUMULATE = 2,
} aisle_epilogue;

/// An int8 linear layer y = x·Bᵀ·scales + bias: B [n×k] row-major, or packed (then `sums` too).
typedef struct {
    aisle_kernel kernel;
    int n, k;
    const int8_t *b;
    const int8_t *packed;
    const int32_t *sums;
    const float *scales;
    const float *bias;
} aisle_dense;

/// Columns [j0, j1) of y (m × n, row stride n): v = (A·Bᵀ)[r][j] · rowScales[r] · scales[j] +
/// bias[j], then `mode`. A is m rows of k int8 (``aisle_quantize_rows``), or for a packed layer
/// the ``aisle_shift_rows`` form of them. j0 is a multiple of 64. The float results are the same
/// on every kernel path.
void aisle_dense_apply(const aisle_dense *d, int m, const void *a, const float *rowScales, float *y, int j0, int j1, aisle_epilogue mode);

/// For float layers: columns [j0, j1) of y (m × n) get bias added, then GELU if `mode` says so.
void aisle_bias_epilogue(int m, int n, int j0, int j1, float *y, const float *bias, aisle_epilogue mode);

/// GELU in place, x·Φ(x) with ``aisle_erf``.
void aisle_gelu(int count, float *x);

/// The error function by a rational approximation, within 1e-6 of erff.
float aisle_erf(float x);

/// Layer normalisation of `rows` rows of n floats in place: (x - mean) / √(variance + ε) · γ + β.
void aisle_layernorm(int rows, int n, float *x, const float *gamma, const float *beta, float epsilon);

/// Multi-head self-attention of one sequence of t tokens, heads [h0, h1) of width d:
/// ctx = softmax(Q·Kᵀ/√d)·V per head. Q, K, V rows have stride `ld` floats, ctx rows `ldc`.
/// `scratch` holds ``aisle_attention_scratch`` floats.
void aisle_attention(int t, int d, int h0, int h1, const float *q, const float *k, const float *v, int ld, float *ctx, int ldc, float *scratch);

/// Floats of scratch ``aisle_attention`` needs for t tokens of head width d.
long aisle_attention_scratch(int t, int d);

/// A pause for spin-wait loops (x86 `pause`, Arm `yield`).
void aisle_cpu_relax(void);

#endif
