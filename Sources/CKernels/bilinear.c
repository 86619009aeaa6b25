#include "ckernels.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_X86 1
#endif

enum { FRACTION_BITS = 6, ONE = 1 << FRACTION_BITS, HALF = ONE / 2 };

// Red and blue (or green and alpha) share a 32-bit word in 16-bit lanes: a lane holds at most
// 255·64 + 32 before each shift, so one multiply blends two channels.
static inline uint32_t blend_pairs(uint32_t tl, uint32_t tr, uint32_t bl, uint32_t br, uint32_t fx, uint32_t fy) {
    const uint32_t mask = 0x00FF00FF, rounding = HALF | HALF << 16;
    uint32_t left = ((tl & mask) * (ONE - fy) + (bl & mask) * fy + rounding) >> FRACTION_BITS & mask;
    uint32_t right = ((tr & mask) * (ONE - fy) + (br & mask) * fy + rounding) >> FRACTION_BITS & mask;
    return (left * (ONE - fx) + right * fx + rounding) >> FRACTION_BITS & mask;
}

// One bilinear sample at (x, y), 16.16 fixed point, into out[0], out[plane], out[2·plane].
static void sample_portable(bk_texture texture, int32_t x, int32_t y, uint8_t *out, ptrdiff_t plane) {
    const uint32_t *top = texture.texels + (ptrdiff_t)(y >> 16) * texture.stride + (x >> 16);
    const uint32_t *bottom = top + texture.stride;
    uint32_t fx = (uint32_t)x >> (16 - FRACTION_BITS) & (ONE - 1), fy = (uint32_t)y >> (16 - FRACTION_BITS) & (ONE - 1);
    uint32_t rb = blend_pairs(top[0], top[1], bottom[0], bottom[1], fx, fy);
    uint32_t ga = blend_pairs(top[0] >> 8, top[1] >> 8, bottom[0] >> 8, bottom[1] >> 8, fx, fy);
    out[0] = (uint8_t)rb;
    out[plane] = (uint8_t)ga;
    out[2 * plane] = (uint8_t)(rb >> 16);
}

#ifdef BK_X86
// The same arithmetic as sample_portable, eight pixels at a time: four gathers fetch the
// neighbours, 16-bit multiplies blend red+blue and green+alpha pairs.
__attribute__((target("avx2"))) static inline __m256i blend_pairs_avx2(__m256i tl, __m256i tr, __m256i bl, __m256i br,
                                                                        __m256i wx0, __m256i wx1, __m256i wy0,
                                                                        __m256i wy1) {
    const __m256i mask = _mm256_set1_epi32(0x00FF00FF), rounding = _mm256_set1_epi16(HALF);
    __m256i left = _mm256_add_epi16(_mm256_mullo_epi16(_mm256_and_si256(tl, mask), wy0),
                                    _mm256_mullo_epi16(_mm256_and_si256(bl, mask), wy1));
    __m256i right = _mm256_add_epi16(_mm256_mullo_epi16(_mm256_and_si256(tr, mask), wy0),
                                     _mm256_mullo_epi16(_mm256_and_si256(br, mask), wy1));
    left = _mm256_srli_epi16(_mm256_add_epi16(left, rounding), FRACTION_BITS);
    right = _mm256_srli_epi16(_mm256_add_epi16(right, rounding), FRACTION_BITS);
    __m256i sum = _mm256_add_epi16(_mm256_mullo_epi16(left, wx0), _mm256_mullo_epi16(right, wx1));
    return _mm256_srli_epi16(_mm256_add_epi16(sum, rounding), FRACTION_BITS);
}

// Eight pixels at (px, py), written to out[0…7] of each plane.
__attribute__((target("avx2"), always_inline)) static inline void span8_avx2(const int *texels, ptrdiff_t stride,
                                                                            __m256i px, __m256i py, uint8_t *out,
                                                                            ptrdiff_t plane) {
    const __m256i fraction = _mm256_set1_epi32(ONE - 1);
    const __m256i one = _mm256_set1_epi16(ONE);
    // Lanes hold pixels 0 1 4 5 | 2 3 6 7. Per 128-bit lane, bytes R B R B … G A G A … → 16-bit
    // pairs R01 R45 G01 G45 B01 B45 A A | R23 R67 …; then 32-bit units to R01 R45 R23 R67 G…; then
    // pairs to R01 R23 R45 R67.
    const __m256i planar = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i pairsInOrder = _mm256_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15,
                                                  0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15);
    // Texel index row·stride + column in one multiply-add of 16-bit pairs (column, row): both are
    // below 2^15, as is the stride (checked by the caller).
    __m256i position = _mm256_or_si256(_mm256_and_si256(py, _mm256_set1_epi32((int)0xFFFF0000)), _mm256_srli_epi32(px, 16));
    __m256i index = _mm256_madd_epi16(position, _mm256_set1_epi32((int)(stride << 16 | 1)));
    // Each 64-bit gather fetches a texel and its right neighbour; four pixels per gather.
    const long long *pairs = (const long long *)texels;
    __m256i top03 = _mm256_i32gather_epi64(pairs, _mm256_castsi256_si128(index), 4);
    __m256i top47 = _mm256_i32gather_epi64(pairs, _mm256_extracti128_si256(index, 1), 4);
    __m256i bottom03 = _mm256_i32gather_epi64((const long long *)(texels + stride), _mm256_castsi256_si128(index), 4);
    __m256i bottom47 = _mm256_i32gather_epi64((const long long *)(texels + stride), _mm256_extracti128_si256(index, 1), 4);
    // Even and odd texels → pixel order 0 1 4 5 2 3 6 7 (undone at the end).
    __m256i tl = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(top03), _mm256_castsi256_ps(top47), 0x88));
    __m256i tr = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(top03), _mm256_castsi256_ps(top47), 0xDD));
    __m256i bl = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(bottom03), _mm256_castsi256_ps(bottom47), 0x88));
    __m256i br = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(bottom03), _mm256_castsi256_ps(bottom47), 0xDD));
    const __m256i gathered = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    px = _mm256_permutevar8x32_epi32(px, gathered);
    py = _mm256_permutevar8x32_epi32(py, gathered);
    // Weights in both 16-bit halves of each lane.
    __m256i fx = _mm256_and_si256(_mm256_srli_epi32(px, 16 - FRACTION_BITS), fraction);
    __m256i fy = _mm256_and_si256(_mm256_srli_epi32(py, 16 - FRACTION_BITS), fraction);
    __m256i wx1 = _mm256_or_si256(fx, _mm256_slli_epi32(fx, 16)), wy1 = _mm256_or_si256(fy, _mm256_slli_epi32(fy, 16));
    __m256i wx0 = _mm256_sub_epi16(one, wx1), wy0 = _mm256_sub_epi16(one, wy1);
    __m256i rb = blend_pairs_avx2(tl, tr, bl, br, wx0, wx1, wy0, wy1);
    __m256i ga = blend_pairs_avx2(_mm256_srli_epi32(tl, 8), _mm256_srli_epi32(tr, 8), _mm256_srli_epi32(bl, 8),
                                  _mm256_srli_epi32(br, 8), wx0, wx1, wy0, wy1);
    // Bytes R B R B … G A G A … per 128-bit lane → planes R, G, B (A dropped).
    __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(_mm256_packus_epi16(rb, ga), planar), order);
    bytes = _mm256_shuffle_epi8(bytes, pairsInOrder);
    __m128i low = _mm256_castsi256_si128(bytes);
    _mm_storel_epi64((__m128i *)out, low);
    _mm_storel_epi64((__m128i *)(out + plane), _mm_unpackhi_epi64(low, low));
    _mm_storel_epi64((__m128i *)(out + 2 * plane), _mm256_extracti128_si256(bytes, 1));
}
#endif

// Nearest-integer rounding without a libm call (lrintf is one unless errno handling is off).
static inline int32_t round_to_int(float value) {
#ifdef BK_X86
    return _mm_cvtss_si32(_mm_set_ss(value));
#else
    return (int32_t)lrintf(value);
#endif
}

// Texture coordinates inside a cell, identical in both code paths: column k starts on the top edge
// at a + (b − a)·k/cell and moves down by a constant step per row (the bilinear interpolation of the
// corners), accumulated in float and rounded to 16.16 fixed point per pixel.
static void cell_portable(bk_texture texture, const float corners[8], int cell, int columns, int rows, uint8_t *out,
                          ptrdiff_t row_stride, ptrdiff_t plane) {
    const float scale = 65536, inverse = 1.0f / (float)cell;
    for (int k = 0; k < columns; k++) {
        float s = (float)k * inverse;
        float x = (corners[0] + (corners[2] - corners[0]) * s) * scale;
        float y = (corners[1] + (corners[3] - corners[1]) * s) * scale;
        float stepX = ((corners[4] - corners[0]) + ((corners[6] - corners[2]) - (corners[4] - corners[0])) * s) * inverse * scale;
        float stepY = ((corners[5] - corners[1]) + ((corners[7] - corners[3]) - (corners[5] - corners[1])) * s) * inverse * scale;
        for (int row = 0; row < rows; row++, x += stepX, y += stepY)
            sample_portable(texture, round_to_int(x), round_to_int(y), out + row * row_stride + k, plane);
    }
}

#ifdef BK_X86
__attribute__((target("avx2"))) static void cell_avx2(bk_texture texture, const float corners[8], int cell, int columns,
                                                       int rows, uint8_t *out, ptrdiff_t row_stride, ptrdiff_t plane) {
    if (columns != 8) {
        cell_portable(texture, corners, cell, columns, rows, out, row_stride, plane);
        return;
    }
    const float inverse = 1.0f / (float)cell;
    const __m256 scale = _mm256_set1_ps(65536), inverses = _mm256_set1_ps(inverse);
    const __m256 s = _mm256_mul_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), inverses);
    const __m256 ax = _mm256_set1_ps(corners[0]), ay = _mm256_set1_ps(corners[1]);
    const __m256 abx = _mm256_set1_ps(corners[2] - corners[0]), aby = _mm256_set1_ps(corners[3] - corners[1]);
    const __m256 acx = _mm256_set1_ps(corners[4] - corners[0]), acy = _mm256_set1_ps(corners[5] - corners[1]);
    const __m256 bdx = _mm256_set1_ps(corners[6] - corners[2]), bdy = _mm256_set1_ps(corners[7] - corners[3]);
    __m256 x = _mm256_mul_ps(_mm256_add_ps(ax, _mm256_mul_ps(abx, s)), scale);
    __m256 y = _mm256_mul_ps(_mm256_add_ps(ay, _mm256_mul_ps(aby, s)), scale);
    const __m256 stepX = _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(acx, _mm256_mul_ps(_mm256_sub_ps(bdx, acx), s)), inverses), scale);
    const __m256 stepY = _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(acy, _mm256_mul_ps(_mm256_sub_ps(bdy, acy), s)), inverses), scale);
    for (int row = 0; row < rows; row++, x = _mm256_add_ps(x, stepX), y = _mm256_add_ps(y, stepY))
        span8_avx2((const int *)texture.texels, texture.stride, _mm256_cvtps_epi32(x), _mm256_cvtps_epi32(y),
                   out + row * row_stride, plane);
}
#endif

static int has_avx2(void) {
#ifdef BK_X86
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static _Atomic int simd_enabled = 1;

void bk_set_simd(int enabled) { simd_enabled = enabled != 0; }

int bk_simd_active(void) { return simd_enabled && has_avx2(); }

void bk_bilinear_pixel(bk_texture texture, int32_t x, int32_t y, uint8_t *out, ptrdiff_t plane) {
    sample_portable(texture, x, y, out, plane);
}

void bk_bilinear_cell(bk_texture texture, const float corners[8], int cell, int columns, int rows, uint8_t *out,
                      ptrdiff_t row_stride, ptrdiff_t plane) {
#ifdef BK_X86
    if (simd_enabled && has_avx2()) {
        cell_avx2(texture, corners, cell, columns, rows, out, row_stride, plane);
        return;
    }
#endif
    cell_portable(texture, corners, cell, columns, rows, out, row_stride, plane);
}
