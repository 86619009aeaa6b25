#include "chdf5.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

// Collects HDF5's error stack (innermost first) into a message instead of printing it.
static herr_t collect(unsigned n, const H5E_error2_t *e, void *data) {
  char *buffer = ((char **)data)[0];
  size_t size = (size_t)((char **)data)[1];
  size_t used = strlen(buffer);
  if (used + 4 < size && e->desc && e->desc[0])
    snprintf(buffer + used, size - used, "%s%s", used ? "; " : "", e->desc);
  (void)n;
  return 0;
}

static int fail(char *error, size_t size, const char *context) {
  if (!error || size == 0) return -1;
  snprintf(error, size, "%s", context);
  size_t used = strlen(error);
  if (used + 3 < size) {
    strcat(error, ": ");
    char *tail = error + strlen(error);
    tail[0] = 0;
    void *data[2] = {tail, (void *)(size - strlen(error))};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, data);
    if (!tail[0]) snprintf(tail, size - strlen(error), "HDF5 error");
  }
  H5Eclear2(H5E_DEFAULT);
  return -1;
}

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// The HDF5 type for one of our dtypes (a new id the caller closes), or -1.
static hid_t h5_type(int dtype) {
  switch (dtype) {
  case 0: case 11: return H5Tcopy(H5T_NATIVE_UINT8);
  case 1: return H5Tcopy(H5T_NATIVE_INT8);
  case 2: return H5Tcopy(H5T_NATIVE_INT16);
  case 3: return H5Tcopy(H5T_NATIVE_INT32);
  case 4: return H5Tcopy(H5T_NATIVE_INT64);
  case 6: return H5Tcopy(H5T_NATIVE_FLOAT);
  case 7: return H5Tcopy(H5T_NATIVE_DOUBLE);
  case 5: {
    // IEEE half precision, laid out the way h5py declares numpy's float16.
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
      H5Tclose(t);
      return -1;
    }
    return t;
  }
  default: return -1;
  }
}

static int dtype_of(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 2 ? 5 : size == 4 ? 6 : size == 8 ? 7 : -1;
  if (cls == H5T_INTEGER) {
    int is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
    case 1: return is_signed ? 1 : 0;
    case 2: return is_signed ? 2 : -1;
    case 4: return is_signed ? 3 : -1;
    case 8: return is_signed ? 4 : -1;
    }
  }
  if (cls == H5T_ENUM && size == 1) return 11; // h5py's bool
  return -1;
}

ch5_id ch5_create(const char *path, char *error, size_t error_size) {
  quiet();
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return fail(error, error_size, "cannot create HDF5 file");
  return file;
}

ch5_id ch5_open(const char *path, int writable, char *error, size_t error_size) {
  quiet();
  if (H5Fis_hdf5(path) <= 0) return fail(error, error_size, "not an HDF5 file");
  hid_t file = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return fail(error, error_size, "cannot open HDF5 file");
  return file;
}

int ch5_close(ch5_id file) { return H5Fclose(file) < 0 ? -1 : 0; }

int ch5_create_dataset(ch5_id file, const char *name, int dtype, const int64_t *shape, int rank,
                       int64_t chunk_rows, int compression, char *error, size_t error_size) {
  if (rank < 1 || rank > 16) return fail(error, error_size, "datasets need 1 to 16 dimensions");
  hsize_t dims[16], chunk[16];
  for (int i = 0; i < rank; ++i) dims[i] = chunk[i] = (hsize_t)shape[i];
  hid_t type = h5_type(dtype);
  if (type < 0) return fail(error, error_size, "unsupported element type for HDF5");
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t links = H5Pcreate(H5P_LINK_CREATE);
  hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(links, 1);
  if (chunk_rows > 0 && dims[0] > 0) {
    chunk[0] = (hsize_t)(chunk_rows < shape[0] ? chunk_rows : shape[0]);
    H5Pset_chunk(props, rank, chunk);
    if (compression > 0) H5Pset_deflate(props, (unsigned)(compression > 9 ? 9 : compression));
  }
  hid_t set = H5Dcreate2(file, name, type, space, links, props, H5P_DEFAULT);
  H5Pclose(props);
  H5Pclose(links);
  H5Sclose(space);
  H5Tclose(type);
  if (set < 0) return fail(error, error_size, "cannot create dataset");
  H5Dclose(set);
  return 0;
}

// Opens dataset `name` and selects rows [row, row+count) of it; fills mem_space for the rows.
static int select_rows(hid_t set, int64_t row, int64_t count, hid_t *file_space, hid_t *mem_space) {
  *file_space = H5Dget_space(set);
  int rank = H5Sget_simple_extent_ndims(*file_space);
  if (rank < 1 || rank > 16) return -1;
  hsize_t dims[16], start[16] = {0}, counts[16];
  H5Sget_simple_extent_dims(*file_space, dims, NULL);
  if (row < 0 || count < 0 || (hsize_t)(row + count) > dims[0]) return -2;
  for (int i = 0; i < rank; ++i) counts[i] = dims[i];
  start[0] = (hsize_t)row;
  counts[0] = (hsize_t)count;
  if (H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, NULL, counts, NULL) < 0) return -1;
  *mem_space = H5Screate_simple(rank, counts, NULL);
  return 0;
}

static int transfer(ch5_id file, const char *name, int dtype, int64_t row, int64_t count, void *data, int write,
                    char *error, size_t error_size) {
  quiet();
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) return fail(error, error_size, "no such dataset");
  hid_t type = h5_type(dtype);
  hid_t file_space = -1, mem_space = -1;
  int selected = type < 0 ? -1 : select_rows(set, row, count, &file_space, &mem_space);
  int status = -1;
  if (selected == 0) {
    status = write ? H5Dwrite(set, type, mem_space, file_space, H5P_DEFAULT, data)
                   : H5Dread(set, type, mem_space, file_space, H5P_DEFAULT, data);
  }
  if (mem_space >= 0) H5Sclose(mem_space);
  if (file_space >= 0) H5Sclose(file_space);
  if (type >= 0) H5Tclose(type);
  H5Dclose(set);
  if (type < 0) return fail(error, error_size, "unsupported element type for HDF5");
  if (selected == -2) return fail(error, error_size, "rows out of range");
  if (status < 0) return fail(error, error_size, write ? "cannot write rows" : "cannot read rows");
  return 0;
}

int ch5_write_rows(ch5_id file, const char *name, int dtype, int64_t row, int64_t count, const void *data,
                   char *error, size_t error_size) {
  return transfer(file, name, dtype, row, count, (void *)data, 1, error, error_size);
}

int ch5_read_rows(ch5_id file, const char *name, int dtype, int64_t row, int64_t count, void *data,
                  char *error, size_t error_size) {
  return transfer(file, name, dtype, row, count, data, 0, error, error_size);
}

int ch5_dataset_info(ch5_id file, const char *name, int64_t *shape, int *dtype, char *error, size_t error_size) {
  quiet();
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) return fail(error, error_size, "no such dataset");
  hid_t space = H5Dget_space(set);
  hid_t type = H5Dget_type(set);
  int rank = H5Sget_simple_extent_ndims(space);
  hsize_t dims[16];
  if (rank >= 0 && rank <= 16) {
    H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < rank; ++i) shape[i] = (int64_t)dims[i];
  }
  *dtype = dtype_of(type);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(set);
  if (rank < 0 || rank > 16) return fail(error, error_size, "dataset has an unsupported rank");
  return rank;
}

struct listing {
  char *buffer;
  size_t size;
  size_t used;
};

static herr_t visit(hid_t object, const char *name, const H5O_info_t *info, void *data) {
  struct listing *l = data;
  (void)object;
  if (info->type != H5O_TYPE_DATASET) return 0;
  size_t length = strlen(name);
  if (l->used + length + 1 < l->size) {
    memcpy(l->buffer + l->used, name, length);
    l->buffer[l->used + length] = '\n';
    l->buffer[l->used + length + 1] = 0;
  }
  l->used += length + 1;
  return 0;
}

int64_t ch5_list_datasets(ch5_id file, char *buffer, size_t buffer_size, char *error, size_t error_size) {
  quiet();
  struct listing l = {buffer, buffer_size, 0};
  if (buffer && buffer_size) buffer[0] = 0;
  if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, visit, &l, H5O_INFO_BASIC) < 0)
    return fail(error, error_size, "cannot list datasets");
  return (int64_t)l.used + 1;
}

int ch5_set_string_attribute(ch5_id file, const char *key, const char *value, char *error, size_t error_size) {
  quiet();
  if (H5Aexists(file, key) > 0) H5Adelete(file, key);
  hid_t type = H5Tcopy(H5T_C_S1);
  size_t length = strlen(value);
  H5Tset_size(type, length > 0 ? length : 1);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attribute = H5Acreate2(file, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int status = attribute < 0 ? -1 : H5Awrite(attribute, type, length > 0 ? value : "");
  if (attribute >= 0) H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
  return status < 0 ? fail(error, error_size, "cannot write attribute") : 0;
}

int64_t ch5_get_string_attribute(ch5_id file, const char *key, int allow_variable, char *buffer, size_t buffer_size,
                                 char *error, size_t error_size) {
  quiet();
  if (H5Aexists(file, key) <= 0) return -2;
  hid_t attribute = H5Aopen(file, key, H5P_DEFAULT);
  hid_t stored = H5Aget_type(attribute);
  if (H5Tget_class(stored) != H5T_STRING) {
    H5Tclose(stored);
    H5Aclose(attribute);
    return fail(error, error_size, "attribute is not a string");
  }
  int64_t result;
  if (H5Tis_variable_str(stored) > 0 && !allow_variable) {
    // Variable-length strings live in the file's global heap, where a corrupt heap sends
    // libhdf5 1.10 into an endless loop (found by make fuzz; docs/security.md#known-findings).
    result = fail(error, error_size, "a variable-length string (Backdrop writes fixed-length ones; this file was made elsewhere)");
  } else if (H5Tis_variable_str(stored) > 0) {
    char *value = NULL;
    hid_t memory = H5Tcopy(H5T_C_S1);
    H5Tset_size(memory, H5T_VARIABLE);
    H5Tset_cset(memory, H5Tget_cset(stored));
    if (H5Aread(attribute, memory, &value) < 0 || !value) {
      result = fail(error, error_size, "cannot read attribute");
    } else {
      result = (int64_t)strlen(value);
      if (buffer_size) snprintf(buffer, buffer_size, "%s", value);
      H5free_memory(value);
    }
    H5Tclose(memory);
  } else {
    size_t size = H5Tget_size(stored);
    char local[4096];
    if (size >= sizeof local) {
      result = fail(error, error_size, "string attribute too long");
    } else if (H5Aread(attribute, stored, local) < 0) {
      result = fail(error, error_size, "cannot read attribute");
    } else {
      local[size] = 0;
      result = (int64_t)strlen(local);
      if (buffer_size) snprintf(buffer, buffer_size, "%s", local);
    }
  }
  H5Tclose(stored);
  H5Aclose(attribute);
  return result;
}
