// Per-pixel loops of the call pipeline that need SIMD to run in real time on a laptop CPU: the
// viewport's bilinear sampler (bilinear.c) and the compositor's alpha rows (alpha.c).
// Plain C, no LibTorch: callers pass raw pointers into tensor storage or Swift arrays.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A texture of packed 8-bit RGBA texels (red in the lowest byte), `stride` texels per row.
/// Every sample reads the texel pair to the right and the pair below, so callers keep one spare
/// column and row beyond the last coordinate they ask for.
typedef struct {
    const uint32_t *texels;
    ptrdiff_t stride;
} bk_texture;

/// One bilinear sample of the texture at (x, y), texels in 16.16 fixed point, non-negative. Weights
/// are in 1/64 texel; the two texels of a column are blended first and rounded, then the two
/// columns. Red, green and blue go to `out[0]`, `out[plane]` and `out[2·plane]`.
void bk_bilinear_pixel(bk_texture texture, int32_t x, int32_t y, uint8_t *out, ptrdiff_t plane);

/// `bk_bilinear_pixel` over a `columns` × `rows` block of output pixels whose texture coordinates
/// are interpolated bilinearly between four corners given as float texel coordinates (x, y
/// pairs: top left, top right, bottom left, bottom right), the corners `cell` pixels apart:
/// column k starts on the top edge at k/cell and steps down the column's interpolated edge one
/// float increment per row. Output rows are `row_stride` bytes apart.
void bk_bilinear_cell(bk_texture texture, const float corners[8], int cell, int columns, int rows, uint8_t *out,
                      ptrdiff_t row_stride, ptrdiff_t plane);

/// One row of an 8-bit alpha plane from two rows of a float mask: round(255 · clamp(top +
/// (bottom − top)·weight, 0, 1)); with `binarize`, the interpolated value is first thresholded at 0.5.
void bk_lerp_rows_to_alpha(const float *top, const float *bottom, float weight, int count, int binarize, uint8_t *out);

/// Turns the SIMD code path (AVX2, where the CPU has it) on or off; off forces the portable path,
/// which gives bit-identical results. On by default.
void bk_set_simd(int enabled);

/// Whether the SIMD code path runs: enabled and supported by this CPU.
int bk_simd_active(void);

#ifdef __cplusplus
}
#endif

#endif
