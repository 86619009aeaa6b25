// exr_to_png: decodes an OpenEXR image (any compression, DWAB included) to an 8-bit RGB PNG.
//
// Used once by `make assets-panoramas` to turn blender-data's CC0 world panoramas into PNGs the
// tests read. It goes through OpenEXR's C wrapper of the RGBA interface (ImfCRgbaFile.h, backed by
// the C++ library) because OpenEXRCore 3.1's own decoder reports "DWA/B decompression not yet
// implemented in C".
//
// Tone mapping (linear scene light → display 8-bit), chosen to keep indoor detail without clipping
// windows and suns to flat white:
//   1. exposure: scale so that the median luminance maps to 0.18 (middle grey), clamped to a gain
//      of at most 16 so near-black images are not blown up;
//   2. Reinhard per channel: c / (1 + c);
//   3. sRGB transfer curve, rounded to 8 bits.
// Build: cc -O2 tools/exr_to_png.c -I/usr/include/OpenEXR -I/usr/include/Imath -lOpenEXR-3_1 -lpng
// Usage: exr_to_png in.exr out.png
#include <ImfCRgbaFile.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static unsigned char encode_srgb(float linear) {
    if (!(linear > 0)) return 0;  // also maps NaN to black
    if (linear >= 1) return 255;
    float v = linear <= 0.0031308f ? 12.92f * linear : 1.055f * powf(linear, 1.0f / 2.4f) - 0.055f;
    return (unsigned char)lrintf(v * 255.0f);
}

static int write_png(const char *path, const unsigned char *rgb, int width, int height) {
    FILE *file = fopen(path, "wb");
    if (!file) { perror(path); return 1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "exr_to_png: cannot write %s\n", path);
        png_destroy_write_struct(&png, &info);
        fclose(file);
        return 1;
    }
    png_init_io(png, file);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(file) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: exr_to_png in.exr out.png\n");
        return 2;
    }
    ImfInputFile *in = ImfOpenInputFile(argv[1]);
    if (!in) { fprintf(stderr, "exr_to_png: %s: %s\n", argv[1], ImfErrorMessage()); return 1; }
    int xmin, ymin, xmax, ymax;
    ImfHeaderDataWindow(ImfInputHeader(in), &xmin, &ymin, &xmax, &ymax);
    int width = xmax - xmin + 1, height = ymax - ymin + 1;
    size_t count = (size_t)width * (size_t)height;
    ImfRgba *pixels = malloc(count * sizeof(ImfRgba));
    float *luminance = malloc(count * sizeof(float));
    unsigned char *rgb = malloc(count * 3);
    if (!pixels || !luminance || !rgb) { fprintf(stderr, "exr_to_png: out of memory\n"); return 1; }
    // The frame-buffer base is shifted so that data-window coordinates index the array.
    ImfInputSetFrameBuffer(in, pixels - xmin - (ptrdiff_t)ymin * width, 1, (size_t)width);
    if (!ImfInputReadPixels(in, ymin, ymax)) {
        fprintf(stderr, "exr_to_png: %s: %s\n", argv[1], ImfErrorMessage());
        return 1;
    }
    ImfCloseInputFile(in);

    float *linear = malloc(count * 3 * sizeof(float));
    if (!linear) { fprintf(stderr, "exr_to_png: out of memory\n"); return 1; }
    for (size_t i = 0; i < count; i++) {
        float r = ImfHalfToFloat(pixels[i].r), g = ImfHalfToFloat(pixels[i].g), b = ImfHalfToFloat(pixels[i].b);
        linear[3 * i] = r, linear[3 * i + 1] = g, linear[3 * i + 2] = b;
        luminance[i] = 0.2126f * r + 0.7152f * g + 0.0722f * b;
    }
    qsort(luminance, count, sizeof(float), compare_floats);
    float median = luminance[count / 2];
    float gain = median > 0.18f / 16.0f ? 0.18f / median : 16.0f;
    for (size_t i = 0; i < count * 3; i++) {
        float c = linear[i] * gain;
        rgb[i] = encode_srgb(c / (1.0f + c));
    }
    int status = write_png(argv[2], rgb, width, height);
    fprintf(stderr, "exr_to_png: %s → %s (%dx%d, median luminance %.4g, gain %.3g)\n", argv[1], argv[2], width,
            height, median, gain);
    free(pixels), free(luminance), free(rgb), free(linear);
    return status;
}
