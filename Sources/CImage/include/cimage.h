// PNG (libpng) and JPEG (libjpeg) codecs behind a small C API.
//
// libpng and libjpeg report errors by longjmp-ing out of the failing call. Every setjmp/longjmp
// pair lives inside one function of cimage.c, so no jump ever crosses a Swift frame: each entry
// point returns 0 on success or a negative code, and writes a message into the caller's buffer.
// All decoding works on memory buffers (the Swift side reads the file and names it in errors).
#ifndef BACKDROP_CIMAGE_H
#define BACKDROP_CIMAGE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Status codes.
enum {
    CI_OK = 0,
    CI_ERROR_FORMAT = -1,    // not a PNG/JPEG, corrupt or truncated data
    CI_ERROR_MEMORY = -2,    // allocation failed
    CI_ERROR_LIMITS = -3,    // dimensions beyond the decoder's safety limits
    CI_ERROR_ARGUMENT = -4,  // unsupported layout passed to an encoder
};

/// An interleaved image: `height` rows of `width` pixels of `channels` samples (1 gray, 2 gray+alpha,
/// 3 RGB, 4 RGBA). 16-bit samples are stored as native-endian uint16. `pixels` is owned by whoever
/// filled the struct with a decoder and is released with `ci_image_free`.
typedef struct {
    int32_t width;
    int32_t height;
    int32_t channels;
    int32_t bit_depth;  // 8 or 16
    void *pixels;
} ci_image;

/// A byte buffer made by an encoder, released with `ci_buffer_free`.
typedef struct {
    uint8_t *data;
    size_t size;
} ci_buffer;

/// Largest width or height the decoders accept (guards against absurd headers in corrupt files).
#define CI_MAX_DIMENSION 32768

/// Decodes a PNG of any colour type and bit depth: palettes become RGB (RGBA when a tRNS chunk is
/// present), tRNS on gray/RGB becomes an alpha channel, 1/2/4-bit gray is expanded to 8 bits and
/// 16-bit samples are kept. Interlaced files are supported.
int ci_png_decode(const uint8_t *data, size_t size, ci_image *out, char *message, size_t message_size);

/// Encodes 8- or 16-bit gray, gray+alpha, RGB or RGBA. `level` is the zlib level 0–9 (-1: default).
int ci_png_encode(const ci_image *image, int level, ci_buffer *out, char *message, size_t message_size);

/// Decodes a baseline or progressive JPEG to 8-bit gray (1 channel) or RGB (3 channels; CMYK and
/// YCCK are refused). A truncated file is an error, not a gray-filled image.
int ci_jpeg_decode(const uint8_t *data, size_t size, ci_image *out, char *message, size_t message_size);

/// Encodes 8-bit gray or RGB with `quality` 1–100 (4:2:0 chroma subsampling for RGB).
int ci_jpeg_encode(const ci_image *image, int quality, ci_buffer *out, char *message, size_t message_size);

void ci_image_free(ci_image *image);
void ci_buffer_free(ci_buffer *buffer);

#ifdef __cplusplus
}
#endif
#endif
