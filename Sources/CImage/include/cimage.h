// PNG and JPEG codecs behind a C API (filled in by the media stage).
#ifndef BACKDROP_CIMAGE_H
#define BACKDROP_CIMAGE_H
#include <stddef.h>
#include <stdint.h>
#endif
