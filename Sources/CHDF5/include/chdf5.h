// A small C layer over libhdf5 for tensor datasets and string/number attributes. HDF5's type
// constants are macros over run-time globals, which Swift cannot import; this layer names them.
// Every function returns >= 0 on success or a negative value with a message in `error`.
#ifndef BACKDROP_CHDF5_H
#define BACKDROP_CHDF5_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types, numbered as Backdrop's DType (c10::ScalarType): u8 0, i8 1, i16 2, i32 3, i64 4,
// f16 5, f32 6, f64 7, bool 11 (stored as u8).
typedef int64_t ch5_id;

ch5_id ch5_create(const char *path, char *error, size_t error_size);
ch5_id ch5_open(const char *path, int writable, char *error, size_t error_size);
int ch5_close(ch5_id file);

// Creates a dataset (intermediate groups included). chunk_rows > 0 chunks along dimension 0;
// compression 1–9 adds gzip (requires chunking).
int ch5_create_dataset(ch5_id file, const char *name, int dtype, const int64_t *shape, int rank,
                       int64_t chunk_rows, int compression, char *error, size_t error_size);
// Writes `count` rows starting at `row` (a hyperslab over dimension 0); data is row-major.
int ch5_write_rows(ch5_id file, const char *name, int dtype, int64_t row, int64_t count, const void *data,
                   char *error, size_t error_size);
int ch5_read_rows(ch5_id file, const char *name, int dtype, int64_t row, int64_t count, void *data,
                  char *error, size_t error_size);
// Rank (return value) and shape (up to 16 dimensions) and stored element type of a dataset.
int ch5_dataset_info(ch5_id file, const char *name, int64_t *shape, int *dtype, char *error, size_t error_size);
// Names of the datasets under the root, recursively, '\n'-separated; returns the needed size.
int64_t ch5_list_datasets(ch5_id file, char *buffer, size_t buffer_size, char *error, size_t error_size);

// Attributes on the root group.
int ch5_set_string_attribute(ch5_id file, const char *key, const char *value, char *error, size_t error_size);
// Returns the length, or -2 when the attribute does not exist; copies at most buffer_size-1 bytes.
int64_t ch5_get_string_attribute(ch5_id file, const char *key, int allow_variable, char *buffer, size_t buffer_size,
                                 char *error, size_t error_size);

// FID statistics (root attributes count, feature_extractor, resize as fixed-length strings; float64
// datasets mu [D] and sigma [D, D]) read in a forked child, so that a file that crashes or hangs
// libhdf5 becomes an error after at most `timeout_seconds`. Free with ch5_free_statistics.
typedef struct {
  int64_t count, dim;
  double *mu, *sigma;
  char extractor[256], resize[64];
} ch5_statistics;
int ch5_read_statistics_isolated(const char *path, double timeout_seconds, ch5_statistics *out, char *error,
                                 size_t error_size);
void ch5_free_statistics(ch5_statistics *s);

#ifdef __cplusplus
}
#endif
#endif
