// PNG and JPEG codecs over libpng and libjpeg. See cimage.h for the contract.
//
// Error handling: both libraries report fatal errors by calling an error function that must not
// return. Ours records the library's message and longjmps back to the setjmp in the same C function
// that started the work, which then frees what it allocated and returns a status code. State that
// changes after setjmp lives behind a pointer to the caller's frame (or is declared volatile), so it
// is still valid after the jump.
#include "cimage.h"

// jpeglib.h needs FILE and size_t declared before it.
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/// A hard cap on decoded pixels (width × height), so a corrupt header cannot ask for gigabytes.
#define CI_MAX_PIXELS ((size_t)1 << 28)

static void set_message(char *message, size_t size, const char *format, ...) {
    if (!message || size == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, size, format, args);
    va_end(args);
}

static int is_little_endian(void) {
    uint16_t probe = 1;
    return *(uint8_t *)&probe == 1;
}

void ci_image_free(ci_image *image) {
    if (!image) return;
    free(image->pixels);
    image->pixels = NULL;
}

void ci_buffer_free(ci_buffer *buffer) {
    if (!buffer) return;
    free(buffer->data);
    buffer->data = NULL;
    buffer->size = 0;
}

// MARK: - PNG

typedef struct {
    // Reading: the input and how far it has been consumed.
    const uint8_t *input;
    size_t input_size, input_offset;
    // Writing: a growing output buffer.
    uint8_t *output;
    size_t output_size, output_capacity;
    // Allocations to release after an error.
    uint8_t *pixels;
    png_bytep *rows;
    char *message;
    size_t message_size;
} png_context;

static void png_on_error(png_structp png, png_const_charp text) {
    png_context *context = (png_context *)png_get_error_ptr(png);
    set_message(context->message, context->message_size, "%s", text);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) {
    // Warnings (unknown ancillary chunks, bad ancillary CRCs) do not make the image unusable.
    (void)png;
    (void)text;
}

static void png_read_memory(png_structp png, png_bytep destination, png_size_t count) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (count > context->input_size - context->input_offset) {
        png_error(png, "unexpected end of data (truncated PNG)");
    }
    memcpy(destination, context->input + context->input_offset, count);
    context->input_offset += count;
}

static void png_write_memory(png_structp png, png_bytep source, png_size_t count) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (count > context->output_capacity - context->output_size) {
        size_t capacity = context->output_capacity ? context->output_capacity : 65536;
        while (capacity - context->output_size < count) capacity *= 2;
        uint8_t *grown = realloc(context->output, capacity);
        if (!grown) png_error(png, "out of memory");
        context->output = grown;
        context->output_capacity = capacity;
    }
    memcpy(context->output + context->output_size, source, count);
    context->output_size += count;
}

static void png_flush_memory(png_structp png) { (void)png; }

/// The part of decoding that may longjmp; `png`/`info` are created and destroyed by the caller.
static int png_decode_inner(png_structp png, png_infop info, png_context *context, ci_image *out) {
    if (setjmp(png_jmpbuf(png))) return CI_ERROR_FORMAT;
    png_set_read_fn(png, context, png_read_memory);
    png_set_user_limits(png, CI_MAX_DIMENSION, CI_MAX_DIMENSION);
    png_read_info(png, info);

    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16 && is_little_endian()) png_set_swap(png);  // PNG stores big-endian samples
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if ((size_t)width * height > CI_MAX_PIXELS) {
        set_message(context->message, context->message_size, "image of %ux%u pixels exceeds the decoder limit", width,
                    height);
        return CI_ERROR_LIMITS;
    }
    if ((depth != 8 && depth != 16) || channels < 1 || channels > 4 ||
        row_bytes != (size_t)width * channels * (depth / 8)) {
        set_message(context->message, context->message_size, "unsupported PNG layout (%d channels of %d bits)",
                    channels, depth);
        return CI_ERROR_FORMAT;
    }
    context->pixels = malloc(row_bytes * height);
    context->rows = malloc(sizeof(png_bytep) * height);
    if (!context->pixels || !context->rows) {
        set_message(context->message, context->message_size, "out of memory for a %ux%u image", width, height);
        return CI_ERROR_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) context->rows[y] = context->pixels + (size_t)y * row_bytes;
    png_read_image(png, context->rows);
    // Reading through IEND checks the CRCs of the trailing chunks: a file cut after its last
    // IDAT is reported instead of silently accepted.
    png_read_end(png, NULL);

    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->bit_depth = depth;
    out->pixels = context->pixels;
    context->pixels = NULL;  // now owned by `out`
    return CI_OK;
}

int ci_png_decode(const uint8_t *data, size_t size, ci_image *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_message(message, message_size, "not a PNG file (bad signature)");
        return CI_ERROR_FORMAT;
    }
    png_context context = {.input = data, .input_size = size, .message = message, .message_size = message_size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(message, message_size, "out of memory creating the PNG decoder");
        return CI_ERROR_MEMORY;
    }
    int status = png_decode_inner(png, info, &context, out);
    png_destroy_read_struct(&png, &info, NULL);
    free(context.rows);
    free(context.pixels);
    return status;
}

static int png_encode_inner(png_structp png, png_infop info, png_context *context, const ci_image *image,
                            int level) {
    if (setjmp(png_jmpbuf(png))) return CI_ERROR_FORMAT;
    static const int color_types[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                      PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(png, context, png_write_memory, png_flush_memory);
    if (level >= 0) png_set_compression_level(png, level > 9 ? 9 : level);
    png_set_IHDR(png, info, (png_uint_32)image->width, (png_uint_32)image->height, image->bit_depth,
                 color_types[image->channels - 1], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (image->bit_depth == 16 && is_little_endian()) png_set_swap(png);
    size_t row_bytes = (size_t)image->width * image->channels * (image->bit_depth / 8);
    for (int32_t y = 0; y < image->height; y++) {
        png_write_row(png, (png_const_bytep)image->pixels + (size_t)y * row_bytes);
    }
    png_write_end(png, NULL);
    return CI_OK;
}

int ci_png_encode(const ci_image *image, int level, ci_buffer *out, char *message, size_t message_size) {
    out->data = NULL;
    out->size = 0;
    if (!image || !image->pixels || image->width <= 0 || image->height <= 0 || image->channels < 1 ||
        image->channels > 4 || (image->bit_depth != 8 && image->bit_depth != 16)) {
        set_message(message, message_size, "PNG encoder: unsupported image layout");
        return CI_ERROR_ARGUMENT;
    }
    png_context context = {.message = message, .message_size = message_size};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        set_message(message, message_size, "out of memory creating the PNG encoder");
        return CI_ERROR_MEMORY;
    }
    int status = png_encode_inner(png, info, &context, image, level);
    png_destroy_write_struct(&png, &info);
    if (status != CI_OK) {
        free(context.output);
        return status;
    }
    out->data = context.output;
    out->size = context.output_size;
    return CI_OK;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr manager;  // first, so a j_common_ptr's `err` can be cast to this struct
    jmp_buf jump;
    char *message;
    size_t message_size;
} jpeg_context;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_context *context = (jpeg_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    set_message(context->message, context->message_size, "%s", text);
    longjmp(context->jump, 1);
}

/// libjpeg reports damaged data as warnings and carries on with gray blocks. Damage that means the
/// pixels are wrong (truncation, hitting a marker inside entropy data, bad Huffman codes, lost
/// restart sync) is an error here; benign warnings (e.g. extraneous bytes before a marker, unknown
/// JFIF revision) are ignored.
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
        jpeg_on_error(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

int ci_jpeg_decode(const uint8_t *data, size_t size, ci_image *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        set_message(message, message_size, "not a JPEG file (no SOI marker)");
        return CI_ERROR_FORMAT;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_context context = {.message = message, .message_size = message_size};
    uint8_t *volatile pixels = NULL;
    cinfo.err = jpeg_std_error(&context.manager);
    context.manager.error_exit = jpeg_on_error;
    context.manager.emit_message = jpeg_on_message;
    if (setjmp(context.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return CI_ERROR_FORMAT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        set_message(message, message_size, "CMYK/YCCK JPEGs are not supported");
        return CI_ERROR_FORMAT;
    }
    if (cinfo.image_width > CI_MAX_DIMENSION || cinfo.image_height > CI_MAX_DIMENSION ||
        (size_t)cinfo.image_width * cinfo.image_height > CI_MAX_PIXELS) {
        set_message(message, message_size, "image of %ux%u pixels exceeds the decoder limit", cinfo.image_width,
                    cinfo.image_height);
        jpeg_destroy_decompress(&cinfo);
        return CI_ERROR_LIMITS;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int channels = cinfo.output_components;
    size_t row_bytes = (size_t)cinfo.output_width * channels;
    pixels = malloc(row_bytes * cinfo.output_height);
    if (!pixels) {
        set_message(message, message_size, "out of memory for a %ux%u image", cinfo.output_width,
                    cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return CI_ERROR_MEMORY;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);  // reads up to EOI: a missing tail is reported here
    out->width = (int32_t)cinfo.output_width;
    out->height = (int32_t)cinfo.output_height;
    out->channels = channels;
    out->bit_depth = 8;
    out->pixels = pixels;
    jpeg_destroy_decompress(&cinfo);
    return CI_OK;
}

int ci_jpeg_encode(const ci_image *image, int quality, ci_buffer *out, char *message, size_t message_size) {
    out->data = NULL;
    out->size = 0;
    if (!image || !image->pixels || image->width <= 0 || image->height <= 0 || image->bit_depth != 8 ||
        (image->channels != 1 && image->channels != 3)) {
        set_message(message, message_size, "JPEG encoder: needs 8-bit gray or RGB");
        return CI_ERROR_ARGUMENT;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_context context = {.message = message, .message_size = message_size};
    unsigned char *volatile buffer = NULL;
    unsigned long buffer_size = 0;
    cinfo.err = jpeg_std_error(&context.manager);
    context.manager.error_exit = jpeg_on_error;
    if (setjmp(context.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return CI_ERROR_FORMAT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &buffer_size);
    cinfo.image_width = (JDIMENSION)image->width;
    cinfo.image_height = (JDIMENSION)image->height;
    cinfo.input_components = image->channels;
    cinfo.in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t row_bytes = (size_t)image->width * image->channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)image->pixels + (size_t)cinfo.next_scanline * row_bytes;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    out->data = buffer;
    out->size = buffer_size;
    return CI_OK;
}
