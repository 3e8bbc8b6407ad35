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

#endif
