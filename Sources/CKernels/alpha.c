#include "ckernels.h"

// A plain loop that compilers vectorise (SSE2 and NEON alike): select, clamp, scale, truncate.
void bk_lerp_rows_to_alpha(const float *top, const float *bottom, float weight, int count, int binarize, uint8_t *out) {
    for (int x = 0; x < count; x++) {
        float value = top[x] + (bottom[x] - top[x]) * weight;
        if (binarize) value = value >= 0.5f ? 1.0f : 0.0f;
        value = value < 0 ? 0 : (value > 1 ? 1 : value);
        out[x] = (uint8_t)(int)(value * 255.0f + 0.5f);
    }
}
