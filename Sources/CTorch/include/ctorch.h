// C API over LibTorch. Every entry point catches every C++ exception; the message is kept per thread
// and read with bd_last_error(). Functions returning a handle return NULL on failure; functions
// returning int return a negative value on failure. No C++ exception ever leaves this library.
#ifndef BACKDROP_CTORCH_H
#define BACKDROP_CTORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bd_tensor_s *bd_tensor;       // owns one at::Tensor
typedef struct bd_generator_s *bd_generator; // owns one at::Generator
typedef struct bd_module_s *bd_module;       // owns one torch::jit::Module
typedef struct bd_process_group_s *bd_process_group;  // a c10d store and Gloo process group

// ---- errors and runtime -------------------------------------------------------------------------
const char *bd_last_error(void);
void bd_clear_error(void);
const char *bd_version(void);
int bd_cuda_device_count(void);
// The file of the loaded libtorch_cpu library ("" when unknown).
const char *bd_library_path(void);
// The C++ ABI the bridge (and so the LibTorch it links) was built with: 1 for the C++11 ABI.
int bd_cxx11_abi(void);
// The CUDA runtime and cuDNN versions of the loaded LibTorch's CUDA part (e.g. 13020, 92600; cuDNN 0
// when absent); -1 when no CUDA part is loaded (a CPU build, or libtorch_cuda not linked).
int bd_cuda_versions(long *cudart, long *cudnn);
void bd_set_num_threads(int n);
int bd_get_num_threads(void);
int bd_set_default_dtype(int dtype);
int bd_get_default_dtype(void);
void bd_manual_seed(uint64_t seed);
int bd_cuda_synchronize(int device_index);

// Device types (c10::DeviceType values).
enum { BD_CPU = 0, BD_CUDA = 1 };
// Scalar types use c10::ScalarType values: u8 0, i8 1, i16 2, i32 3, i64 4, f16 5, f32 6, f64 7,
// c64 9, c128 10, bool 11, bf16 15.

// ---- tensor lifetime and metadata ---------------------------------------------------------------
void bd_free(bd_tensor t);
int64_t bd_dim(bd_tensor t);
int bd_sizes(bd_tensor t, int64_t *out);
int bd_strides(bd_tensor t, int64_t *out);
int64_t bd_storage_offset(bd_tensor t);
int bd_dtype(bd_tensor t);
int bd_device(bd_tensor t, int *type, int *index);
int64_t bd_numel(bd_tensor t);
bool bd_is_contiguous(bd_tensor t);
bool bd_defined(bd_tensor t);
char *bd_to_string(bd_tensor t); // free with bd_free_string
void bd_free_string(char *s);
bool bd_same_storage(bd_tensor a, bd_tensor b);

// ---- data in and out ----------------------------------------------------------------------------
bd_tensor bd_from_data(const void *data, const int64_t *sizes, int ndim, int dtype);
int bd_copy_to_buffer(bd_tensor t, void *dst, size_t nbytes); // CPU contiguous copy, t's dtype
// The storage of a CPU tensor that is contiguous; NULL (with an error) otherwise. Valid while t lives.
void *bd_data_ptr(bd_tensor t);
int bd_item_double(bd_tensor t, double *out);
int bd_item_int64(bd_tensor t, int64_t *out);
bd_tensor bd_to(bd_tensor t, int dtype, int device_type, int device_index, bool copy);
bd_tensor bd_shallow_copy(bd_tensor t); // another handle on the same tensor
// Replaces t's data (shape, dtype, device) keeping its identity, as `param.data = new` in Python.
int bd_set_data(bd_tensor t, bd_tensor data);

// ---- creation -----------------------------------------------------------------------------------
bd_tensor bd_full(const int64_t *sizes, int ndim, double value, int dtype, int dev, int idx);
bd_tensor bd_empty(const int64_t *sizes, int ndim, int dtype, int dev, int idx);
bd_tensor bd_arange(double start, double end, double step, int dtype, int dev, int idx);
bd_tensor bd_linspace(double start, double end, int64_t steps, int dtype, int dev, int idx);
bd_tensor bd_eye(int64_t n, int dtype, int dev, int idx);
// kind: 0 randn, 1 rand; gen may be NULL (global generator).
bd_tensor bd_random(int kind, const int64_t *sizes, int ndim, int dtype, int dev, int idx, bd_generator gen);
bd_tensor bd_randint(int64_t low, int64_t high, const int64_t *sizes, int ndim, int dtype, int dev, int idx, bd_generator gen);
bd_tensor bd_randperm(int64_t n, int dev, int idx, bd_generator gen);

bd_generator bd_generator_new(int dev, int idx, uint64_t seed);
void bd_generator_free(bd_generator g);
bd_tensor bd_generator_get_state(bd_generator g);
int bd_generator_set_state(bd_generator g, bd_tensor state);

// ---- views, indexing, joining -------------------------------------------------------------------
bd_tensor bd_reshape(bd_tensor t, const int64_t *sizes, int n);
bd_tensor bd_view(bd_tensor t, const int64_t *sizes, int n);
bd_tensor bd_permute(bd_tensor t, const int64_t *dims, int n);
bd_tensor bd_transpose(bd_tensor t, int64_t d0, int64_t d1);
bd_tensor bd_slice(bd_tensor t, int64_t dim, int64_t start, int64_t end, int64_t step);
bd_tensor bd_narrow(bd_tensor t, int64_t dim, int64_t start, int64_t length);
bd_tensor bd_select(bd_tensor t, int64_t dim, int64_t index);
bd_tensor bd_index_select(bd_tensor t, int64_t dim, bd_tensor index);
bd_tensor bd_gather(bd_tensor t, int64_t dim, bd_tensor index);
bd_tensor bd_scatter(bd_tensor t, int64_t dim, bd_tensor index, bd_tensor src, bool add);
bd_tensor bd_index(bd_tensor t, const bd_tensor *indices, int n); // NULL entry = whole dimension
int bd_index_put_(bd_tensor t, const bd_tensor *indices, int n, bd_tensor values, bool accumulate);
bd_tensor bd_masked_fill(bd_tensor t, bd_tensor mask, double value);
bd_tensor bd_masked_select(bd_tensor t, bd_tensor mask);
bd_tensor bd_where(bd_tensor cond, bd_tensor a, bd_tensor b);
bd_tensor bd_cat(const bd_tensor *ts, int n, int64_t dim);
bd_tensor bd_stack(const bd_tensor *ts, int n, int64_t dim);
int bd_chunk(bd_tensor t, int64_t chunks, int64_t dim, bd_tensor *out, int cap);
int bd_split(bd_tensor t, const int64_t *sizes, int n, int64_t dim, bd_tensor *out, int cap);
bd_tensor bd_repeat(bd_tensor t, const int64_t *sizes, int n);
bd_tensor bd_expand(bd_tensor t, const int64_t *sizes, int n);
bd_tensor bd_flip(bd_tensor t, const int64_t *dims, int n);
bd_tensor bd_roll(bd_tensor t, const int64_t *shifts, const int64_t *dims, int n);
bd_tensor bd_squeeze(bd_tensor t, int64_t dim, bool all);
bd_tensor bd_unsqueeze(bd_tensor t, int64_t dim);
bd_tensor bd_flatten(bd_tensor t, int64_t start, int64_t end);
bd_tensor bd_contiguous(bd_tensor t);
// Rank 4 only: NCHW sizes over NHWC memory (LibTorch's channels-last format).
bd_tensor bd_contiguous_channels_last(bd_tensor t);
bool bd_is_channels_last(bd_tensor t);
bd_tensor bd_clone(bd_tensor t);
bd_tensor bd_as_strided(bd_tensor t, const int64_t *sizes, const int64_t *strides, int n, int64_t offset);
bd_tensor bd_triangle(bd_tensor t, int64_t diagonal, bool upper);
bd_tensor bd_nonzero(bd_tensor t);

// ---- elementwise --------------------------------------------------------------------------------
typedef enum {
  BD_NEG, BD_ABS, BD_EXP, BD_LOG, BD_SQRT, BD_RSQRT, BD_SIN, BD_COS, BD_TANH, BD_SIGMOID,
  BD_RELU, BD_GELU, BD_GELU_TANH, BD_SILU, BD_HARDSWISH, BD_FLOOR, BD_CEIL, BD_ROUND, BD_SIGN,
  BD_RECIPROCAL, BD_SQUARE, BD_LOG1P, BD_EXPM1, BD_ERF, BD_LOGICAL_NOT, BD_ISNAN, BD_ISFINITE,
  BD_REAL, BD_IMAG, BD_ATAN, BD_ASIN, BD_ACOS, BD_HARDSIGMOID, BD_LOG2, BD_TRUNC
} bd_unary_op;
bd_tensor bd_unary(bd_unary_op op, bd_tensor t);

typedef enum {
  BD_ADD, BD_SUB, BD_MUL, BD_DIV, BD_POW, BD_MAXIMUM, BD_MINIMUM, BD_EQ, BD_NE, BD_LT, BD_LE,
  BD_GT, BD_GE, BD_LOGICAL_AND, BD_LOGICAL_OR, BD_REMAINDER, BD_ATAN2, BD_FLOOR_DIVIDE,
  BD_RSUB, BD_RDIV, BD_RPOW // scalar forms only: s - t, s / t, s ^ t
} bd_binary_op;
bd_tensor bd_binary(bd_binary_op op, bd_tensor a, bd_tensor b);
bd_tensor bd_binary_scalar(bd_binary_op op, bd_tensor a, double s);
bd_tensor bd_clamp(bd_tensor t, double lo, double hi, bool has_lo, bool has_hi);
bd_tensor bd_lerp(bd_tensor a, bd_tensor b, double weight);

// In-place updates (used by optimisers and parameter loading); they return int status.
// ops: BD_ADD (a += alpha*b), BD_SUB, BD_MUL, BD_DIV, BD_MAXIMUM; copy is separate.
int bd_inplace_binary(bd_binary_op op, bd_tensor a, bd_tensor b, double alpha);
int bd_inplace_scalar(bd_binary_op op, bd_tensor a, double s);
int bd_copy_(bd_tensor dst, bd_tensor src);
int bd_fill_(bd_tensor t, double value);
int bd_addcmul_(bd_tensor t, bd_tensor a, bd_tensor b, double value);
int bd_addcdiv_(bd_tensor t, bd_tensor a, bd_tensor b, double value);
int bd_unary_(bd_unary_op op, bd_tensor t); // only BD_SQRT, BD_NEG, BD_EXP supported
int bd_normal_(bd_tensor t, double mean, double std, bd_generator gen);
int bd_uniform_(bd_tensor t, double lo, double hi, bd_generator gen);

// ---- reductions ---------------------------------------------------------------------------------
typedef enum { BD_SUM, BD_MEAN, BD_AMAX, BD_AMIN, BD_PROD, BD_LOGSUMEXP, BD_ANY, BD_ALL } bd_reduce_op;
// ndims == 0 reduces over all dimensions.
bd_tensor bd_reduce(bd_reduce_op op, bd_tensor t, const int64_t *dims, int ndims, bool keepdim);
bd_tensor bd_var(bd_tensor t, const int64_t *dims, int ndims, int64_t correction, bool keepdim, bool std);
int bd_max_dim(bd_tensor t, int64_t dim, bool keepdim, bool max, bd_tensor *values, bd_tensor *indices);
bd_tensor bd_argmax(bd_tensor t, int64_t dim, bool has_dim, bool keepdim, bool max);
bd_tensor bd_cumsum(bd_tensor t, int64_t dim);
int bd_sort(bd_tensor t, int64_t dim, bool descending, bd_tensor *values, bd_tensor *indices);
int bd_topk(bd_tensor t, int64_t k, int64_t dim, bool largest, bd_tensor *values, bd_tensor *indices);

// ---- linear algebra -----------------------------------------------------------------------------
bd_tensor bd_matmul(bd_tensor a, bd_tensor b);
bd_tensor bd_bmm(bd_tensor a, bd_tensor b);
bd_tensor bd_baddbmm(bd_tensor input, bd_tensor a, bd_tensor b, double beta, double alpha);
bd_tensor bd_einsum(const char *equation, const bd_tensor *ts, int n);
bd_tensor bd_linear(bd_tensor x, bd_tensor w, bd_tensor b /* nullable */);
int bd_linalg_eigh(bd_tensor t, bool upper, bd_tensor *values, bd_tensor *vectors);
bd_tensor bd_linalg_eigvals(bd_tensor t);
int bd_linalg_svd(bd_tensor t, bool full_matrices, bd_tensor *u, bd_tensor *s, bd_tensor *vh);
bd_tensor bd_linalg_inv(bd_tensor t);
bd_tensor bd_linalg_det(bd_tensor t);
bd_tensor bd_linalg_solve(bd_tensor a, bd_tensor b);
// ord: "fro", "nuc", or a number as text ("2", "-2", "1", "inf", "-inf")
bd_tensor bd_linalg_matrix_norm(bd_tensor t, const char *ord);
bd_tensor bd_linalg_vector_norm(bd_tensor t, double ord, const int64_t *dims, int ndims, bool keepdim);

// ---- neural-network functions -------------------------------------------------------------------
bd_tensor bd_conv2d(bd_tensor x, bd_tensor w, bd_tensor b, const int64_t *stride, const int64_t *padding,
                    const int64_t *dilation, int64_t groups);
bd_tensor bd_conv_transpose2d(bd_tensor x, bd_tensor w, bd_tensor b, const int64_t *stride,
                              const int64_t *padding, const int64_t *output_padding, int64_t groups,
                              const int64_t *dilation);
bd_tensor bd_avg_pool2d(bd_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                        bool ceil_mode, bool count_include_pad);
bd_tensor bd_max_pool2d(bd_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                        const int64_t *dilation, bool ceil_mode);
bd_tensor bd_adaptive_pool2d(bd_tensor x, const int64_t *output_size, bool max);
bd_tensor bd_group_norm(bd_tensor x, int64_t groups, bd_tensor w, bd_tensor b, double eps);
bd_tensor bd_layer_norm(bd_tensor x, const int64_t *shape, int n, bd_tensor w, bd_tensor b, double eps);
bd_tensor bd_batch_norm(bd_tensor x, bd_tensor w, bd_tensor b, bd_tensor mean, bd_tensor var, bool training,
                        double momentum, double eps);
bd_tensor bd_softmax(bd_tensor x, int64_t dim, bool log, int dtype /* -1 keep */);
bd_tensor bd_dropout(bd_tensor x, double p, bool train);
bd_tensor bd_embedding(bd_tensor weight, bd_tensor indices);
// mode: 0 nearest, 1 bilinear, 2 bicubic; align_corners: -1 unset, 0 false, 1 true.
// size may be NULL, then scale (two factors) is used.
bd_tensor bd_interpolate(bd_tensor x, const int64_t *size, const double *scale, int mode, int align_corners,
                         bool antialias);
// mode: 0 bilinear, 1 nearest, 2 bicubic; padding: 0 zeros, 1 border, 2 reflection.
bd_tensor bd_grid_sample(bd_tensor x, bd_tensor grid, int mode, int padding, bool align_corners);
// mode: 0 constant, 1 reflect, 2 replicate, 3 circular.
bd_tensor bd_pad(bd_tensor x, const int64_t *pads, int n, int mode, double value);
bd_tensor bd_sdpa(bd_tensor q, bd_tensor k, bd_tensor v, bd_tensor mask /* nullable, additive or bool */,
                  bool causal, double scale /* <= 0: 1/sqrt(head dim) */);
// reduction: 0 none, 1 mean, 2 sum
bd_tensor bd_mse_loss(bd_tensor a, bd_tensor b, int reduction);
bd_tensor bd_cross_entropy(bd_tensor logits, bd_tensor target, int reduction);

// ---- autograd -----------------------------------------------------------------------------------
int bd_set_requires_grad(bd_tensor t, bool flag);
bool bd_requires_grad(bd_tensor t);
int bd_grad(bd_tensor t, bd_tensor *out); // *out = NULL when no gradient
int bd_set_grad(bd_tensor t, bd_tensor g /* nullable: drop the gradient */);
int bd_backward(bd_tensor t, bd_tensor grad /* nullable */, bool retain_graph, bool create_graph);
int bd_autograd_grad(const bd_tensor *outputs, int nout, const bd_tensor *inputs, int nin,
                     const bd_tensor *grad_outputs /* nullable */, bool retain_graph, bool create_graph,
                     bool allow_unused, bd_tensor *out);
bd_tensor bd_detach(bd_tensor t);
bool bd_set_grad_enabled(bool enabled); // returns the previous state
bool bd_is_grad_enabled(void);
void *bd_inference_mode_enter(void);
void bd_inference_mode_exit(void *guard);
// Automatic mixed precision on `device_type` (BD_CPU or BD_CUDA) computing in `dtype` (e.g. bf16);
// enter returns the previous settings, to give back to exit.
int bd_autocast_enter(int device_type, int dtype, int *previous_enabled, int *previous_dtype);
void bd_autocast_exit(int device_type, int previous_enabled, int previous_dtype);

// A Swift closure seen from C: fills out[0..<cap] and returns the count, or -1 with an error set
// through bd_set_error.
typedef int (*bd_closure)(void *ctx, const bd_tensor *inputs, int n, bd_tensor *out, int cap);
void bd_set_error(const char *message);
// Gradient checkpointing: runs fn on inputs[0..<n] without keeping activations; backward runs it
// again with the random-number state of the first run. inputs[n..<n+nparams] are the parameters fn
// uses: they connect the graph (gradients reach them even when no input needs one).
// `release(ctx)` is called once the graph no longer needs fn.
int bd_checkpoint(bd_closure fn, void *ctx, void (*release)(void *), const bd_tensor *inputs, int n, int nparams,
                  bd_tensor *out, int cap);

// ---- TorchScript --------------------------------------------------------------------------------
bd_module bd_jit_load(const char *path, int dev, int idx);
void bd_jit_free(bd_module m);
int bd_jit_run_method(bd_module m, const char *method, const bd_tensor *inputs, int n, bd_tensor *out, int cap);
typedef void (*bd_named_tensor_fn)(void *ctx, const char *name, bd_tensor t);
int bd_jit_named_tensors(bd_module m, bool buffers, bd_named_tensor_fn fn, void *ctx);
int bd_jit_set_training(bd_module m, bool training);
bd_module bd_jit_module_new(const char *type_name);
int bd_jit_register_tensor(bd_module m, const char *name, bd_tensor t, bool is_buffer);
int bd_jit_register_module(bd_module parent, const char *name, bd_module child);
// Traces fn(inputs) with m as `self` and adds the recorded graph to m as `method`.
int bd_jit_trace(bd_module m, const char *method, bd_closure fn, void *ctx, const bd_tensor *inputs, int n);
int bd_jit_save(bd_module m, const char *path);

// Distributed (distributed.cpp): rendezvous at host:port (rank 0 serves the store), then
// in-place collectives; each returns 0, or -1 with the error set.
enum { BD_DIST_GLOO = 0, BD_DIST_NCCL = 1 };
/// 1 when this build can make NCCL groups (a CUDA LibTorch with NCCL's headers), else 0.
int bd_dist_has_nccl(void);
/// `device`: the CUDA device index of this rank (NCCL only).
bd_process_group bd_dist_init(const char *host, int port, int rank, int world, int64_t timeout_ms, int backend, int device);
void bd_dist_free(bd_process_group g);
int bd_dist_all_reduce_sum(bd_process_group g, bd_tensor t);
int bd_dist_broadcast(bd_process_group g, bd_tensor t, int root);
int bd_dist_barrier(bd_process_group g);
/// Every rank's `input` (same shape on all), stacked in rank order along dim 0 into `output` ([world * n, ...], contiguous).
int bd_dist_all_gather(bd_process_group g, bd_tensor input, bd_tensor output);

#ifdef __cplusplus
}
#endif
#endif
