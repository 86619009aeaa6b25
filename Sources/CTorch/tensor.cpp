// Runtime, tensor metadata, data transfer, creation, views and elementwise ops.
#include "bridge.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/EmptyTensor.h>
#include <ATen/TracerMode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <sstream>

namespace {
thread_local std::string last_error;
thread_local bool has_error = false;

// Integral tensors keep their dtype with integral scalars, as `t + 1` does in Python.
at::Scalar scalar_for(const at::Tensor &t, double s) {
  if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false) && std::floor(s) == s &&
      std::fabs(s) < 9.0e15)
    return at::Scalar(static_cast<int64_t>(s));
  return at::Scalar(s);
}
} // namespace

namespace bd {
void set_error(const std::string &message) {
  last_error = message;
  has_error = true;
}

std::vector<at::Tensor> tensors(const bd_tensor *ts, int n) {
  std::vector<at::Tensor> result;
  result.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (!ts[i]) throw std::invalid_argument("null tensor in a tensor list");
    result.push_back(ts[i]->t);
  }
  return result;
}

int emit(const std::vector<at::Tensor> &ts, bd_tensor *out, int cap) {
  if (static_cast<int>(ts.size()) > cap)
    throw std::length_error("operation produced " + std::to_string(ts.size()) + " tensors, room for " +
                            std::to_string(cap));
  for (size_t i = 0; i < ts.size(); ++i) out[i] = wrap(ts[i]);
  return static_cast<int>(ts.size());
}

std::vector<at::Tensor> call_closure(bd_closure fn, void *ctx, const std::vector<at::Tensor> &inputs, int cap,
                                     const char *what) {
  std::vector<bd_tensor> in;
  in.reserve(inputs.size());
  for (const auto &t : inputs) in.push_back(wrap(t));
  std::vector<bd_tensor> out(static_cast<size_t>(cap), nullptr);
  int n = fn(ctx, in.data(), static_cast<int>(in.size()), out.data(), cap);
  for (auto h : in) delete h;
  if (n < 0) {
    for (auto h : out) delete h;
    const char *message = bd_last_error();
    throw std::runtime_error(message ? message : std::string(what) + " failed");
  }
  std::vector<at::Tensor> result;
  for (int i = 0; i < n; ++i) {
    result.push_back(out[static_cast<size_t>(i)]->t);
    delete out[static_cast<size_t>(i)];
  }
  return result;
}
} // namespace bd

extern "C" {

// ---- errors and runtime -------------------------------------------------------------------------
const char *bd_last_error(void) { return has_error ? last_error.c_str() : nullptr; }
void bd_clear_error(void) {
  has_error = false;
  last_error.clear();
}
void bd_set_error(const char *message) { bd::set_error(message ? message : "error"); }
const char *bd_version(void) { return TORCH_VERSION; }
const char *bd_library_path(void) {
  // The shared object that defines ATen's context: libtorch_cpu of the LibTorch actually loaded.
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&at::globalContext), &info) != 0 && info.dli_fname) return info.dli_fname;
  return "";
}
int bd_cxx11_abi(void) { return _GLIBCXX_USE_CXX11_ABI; }
int bd_cuda_versions(long *cudart, long *cudnn) {
  try {
    const auto &hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDART()) return -1;
    *cudart = hooks.versionCUDART();
    *cudnn = hooks.hasCuDNN() ? hooks.versionCuDNN() : 0;
    return 0;
  } catch (...) {
    return -1;
  }
}
int bd_cuda_device_count(void) {
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
}
void bd_set_num_threads(int n) { at::set_num_threads(n); }
int bd_get_num_threads(void) { return at::get_num_threads(); }
int bd_set_default_dtype(int dtype) {
  BD_STATUS(at::set_default_dtype(c10::scalarTypeToTypeMeta(static_cast<at::ScalarType>(dtype))))
}
int bd_get_default_dtype(void) { return static_cast<int>(at::typeMetaToScalarType(at::get_default_dtype())); }
void bd_manual_seed(uint64_t seed) { torch::manual_seed(seed); }
int bd_cuda_synchronize(int device_index) { BD_STATUS(torch::cuda::synchronize(device_index)) }

// ---- tensor lifetime and metadata ---------------------------------------------------------------
void bd_free(bd_tensor t) { delete t; }
int64_t bd_dim(bd_tensor t) { return t->t.dim(); }
int bd_sizes(bd_tensor t, int64_t *out) {
  auto s = t->t.sizes();
  std::copy(s.begin(), s.end(), out);
  return 0;
}
int bd_strides(bd_tensor t, int64_t *out) {
  BD_STATUS(auto s = t->t.strides(); std::copy(s.begin(), s.end(), out))
}
int64_t bd_storage_offset(bd_tensor t) { return t->t.storage_offset(); }
int bd_dtype(bd_tensor t) { return static_cast<int>(t->t.scalar_type()); }
int bd_device(bd_tensor t, int *type, int *index) {
  auto d = t->t.device();
  *type = d.is_cuda() ? BD_CUDA : BD_CPU;
  *index = d.has_index() ? d.index() : 0;
  return 0;
}
int64_t bd_numel(bd_tensor t) { return t->t.numel(); }
bool bd_is_contiguous(bd_tensor t) { return t->t.is_contiguous(); }
bool bd_defined(bd_tensor t) { return t && t->t.defined(); }
char *bd_to_string(bd_tensor t) {
  try {
    std::ostringstream stream;
    stream << t->t;
    return strdup(stream.str().c_str());
  }
  BD_CATCH return nullptr;
}
void bd_free_string(char *s) { free(s); }
bool bd_same_storage(bd_tensor a, bd_tensor b) { return a->t.is_alias_of(b->t); }

// ---- data in and out ----------------------------------------------------------------------------
bd_tensor bd_from_data(const void *data, const int64_t *sizes, int ndim, int dtype) {
  try {
    // Outside the tracer: a trace would record only the allocation, not the bytes copied into it,
    // and replay it as uninitialised memory. Untraced, the tensor enters a trace as a constant.
    at::tracer::impl::NoTracerDispatchMode untraced;
    auto t = at::empty(bd::ints(sizes, ndim), at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)));
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), data, t.nbytes());
    return bd::wrap(t);
  }
  BD_CATCH return nullptr;
}
int bd_copy_to_buffer(bd_tensor t, void *dst, size_t nbytes) {
  try {
    auto c = t->t.detach().to(at::kCPU).contiguous();
    if (c.nbytes() != nbytes)
      throw std::invalid_argument("buffer of " + std::to_string(nbytes) + " bytes for a tensor of " +
                                  std::to_string(c.nbytes()));
    if (nbytes > 0) std::memcpy(dst, c.data_ptr(), nbytes);
    return 0;
  }
  BD_CATCH return -1;
}
void *bd_data_ptr(bd_tensor t) {
  try {
    if (!t->t.device().is_cpu()) throw std::invalid_argument("direct data access needs a CPU tensor");
    if (!t->t.is_contiguous()) throw std::invalid_argument("direct data access needs a contiguous tensor");
    return t->t.data_ptr();
  }
  BD_CATCH return nullptr;
}
int bd_item_double(bd_tensor t, double *out) { BD_STATUS(*out = t->t.item<double>()) }
int bd_item_int64(bd_tensor t, int64_t *out) { BD_STATUS(*out = t->t.item<int64_t>()) }
bd_tensor bd_to(bd_tensor t, int dtype, int dev, int idx, bool copy) {
  BD_TENSOR(t->t.to(bd::options(dtype, dev, idx), /*non_blocking=*/false, copy))
}
bd_tensor bd_shallow_copy(bd_tensor t) { return bd::wrap(t->t); }
int bd_set_data(bd_tensor t, bd_tensor data) { BD_STATUS(t->t.set_data(data->t)) }

// ---- creation -----------------------------------------------------------------------------------
bd_tensor bd_full(const int64_t *sizes, int ndim, double value, int dtype, int dev, int idx) {
  BD_TENSOR(at::full(bd::ints(sizes, ndim), value, bd::options(dtype, dev, idx)))
}
bd_tensor bd_empty(const int64_t *sizes, int ndim, int dtype, int dev, int idx) {
  BD_TENSOR(at::empty(bd::ints(sizes, ndim), bd::options(dtype, dev, idx)))
}
bd_tensor bd_arange(double start, double end, double step, int dtype, int dev, int idx) {
  BD_TENSOR(at::arange(start, end, step, bd::options(dtype, dev, idx)))
}
bd_tensor bd_linspace(double start, double end, int64_t steps, int dtype, int dev, int idx) {
  BD_TENSOR(at::linspace(start, end, steps, bd::options(dtype, dev, idx)))
}
bd_tensor bd_eye(int64_t n, int dtype, int dev, int idx) { BD_TENSOR(at::eye(n, bd::options(dtype, dev, idx))) }
bd_tensor bd_random(int kind, const int64_t *sizes, int ndim, int dtype, int dev, int idx, bd_generator gen) {
  BD_TENSOR(kind == 0 ? at::randn(bd::ints(sizes, ndim), bd::optional(gen), bd::options(dtype, dev, idx))
                      : at::rand(bd::ints(sizes, ndim), bd::optional(gen), bd::options(dtype, dev, idx)))
}
bd_tensor bd_randint(int64_t low, int64_t high, const int64_t *sizes, int ndim, int dtype, int dev, int idx,
                     bd_generator gen) {
  BD_TENSOR(at::randint(low, high, bd::ints(sizes, ndim), bd::optional(gen), bd::options(dtype, dev, idx)))
}
bd_tensor bd_randperm(int64_t n, int dev, int idx, bd_generator gen) {
  BD_TENSOR(at::randperm(n, bd::optional(gen), bd::options(static_cast<int>(at::kLong), dev, idx)))
}

bd_generator bd_generator_new(int dev, int idx, uint64_t seed) {
  try {
    at::Generator g = dev == BD_CUDA
                          ? at::globalContext().defaultGenerator(at::Device(at::kCUDA, idx)).clone()
                          : at::detail::createCPUGenerator(seed);
    g.set_current_seed(seed);
    return new bd_generator_s{g};
  }
  BD_CATCH return nullptr;
}
void bd_generator_free(bd_generator g) { delete g; }
bd_tensor bd_generator_get_state(bd_generator g) {
  try {
    std::lock_guard<std::mutex> lock(g->g.mutex());
    return bd::wrap(g->g.get_state());
  }
  BD_CATCH return nullptr;
}
int bd_generator_set_state(bd_generator g, bd_tensor state) {
  try {
    std::lock_guard<std::mutex> lock(g->g.mutex());
    g->g.set_state(state->t);
    return 0;
  }
  BD_CATCH return -1;
}

// ---- views, indexing, joining -------------------------------------------------------------------
bd_tensor bd_reshape(bd_tensor t, const int64_t *sizes, int n) { BD_TENSOR(t->t.reshape(bd::ints(sizes, n))) }
bd_tensor bd_view(bd_tensor t, const int64_t *sizes, int n) { BD_TENSOR(t->t.view(bd::ints(sizes, n))) }
bd_tensor bd_permute(bd_tensor t, const int64_t *dims, int n) { BD_TENSOR(t->t.permute(bd::ints(dims, n))) }
bd_tensor bd_transpose(bd_tensor t, int64_t d0, int64_t d1) { BD_TENSOR(t->t.transpose(d0, d1)) }
bd_tensor bd_slice(bd_tensor t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  BD_TENSOR(t->t.slice(dim, start, end, step))
}
bd_tensor bd_narrow(bd_tensor t, int64_t dim, int64_t start, int64_t length) {
  BD_TENSOR(t->t.narrow(dim, start, length))
}
bd_tensor bd_select(bd_tensor t, int64_t dim, int64_t index) { BD_TENSOR(t->t.select(dim, index)) }
bd_tensor bd_index_select(bd_tensor t, int64_t dim, bd_tensor index) { BD_TENSOR(t->t.index_select(dim, index->t)) }
bd_tensor bd_gather(bd_tensor t, int64_t dim, bd_tensor index) { BD_TENSOR(t->t.gather(dim, index->t)) }
bd_tensor bd_scatter(bd_tensor t, int64_t dim, bd_tensor index, bd_tensor src, bool add) {
  BD_TENSOR(add ? t->t.scatter_add(dim, index->t, src->t) : t->t.scatter(dim, index->t, src->t))
}
static c10::List<c10::optional<at::Tensor>> index_list(const bd_tensor *indices, int n) {
  c10::List<c10::optional<at::Tensor>> list;
  list.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) list.push_back(bd::optional(indices[i]));
  return list;
}
bd_tensor bd_index(bd_tensor t, const bd_tensor *indices, int n) { BD_TENSOR(t->t.index(index_list(indices, n))) }
int bd_index_put_(bd_tensor t, const bd_tensor *indices, int n, bd_tensor values, bool accumulate) {
  BD_STATUS(t->t.index_put_(index_list(indices, n), values->t, accumulate))
}
bd_tensor bd_masked_fill(bd_tensor t, bd_tensor mask, double value) {
  BD_TENSOR(t->t.masked_fill(mask->t, scalar_for(t->t, value)))
}
bd_tensor bd_masked_select(bd_tensor t, bd_tensor mask) { BD_TENSOR(t->t.masked_select(mask->t)) }
bd_tensor bd_where(bd_tensor cond, bd_tensor a, bd_tensor b) { BD_TENSOR(at::where(cond->t, a->t, b->t)) }
bd_tensor bd_cat(const bd_tensor *ts, int n, int64_t dim) { BD_TENSOR(at::cat(bd::tensors(ts, n), dim)) }
bd_tensor bd_stack(const bd_tensor *ts, int n, int64_t dim) { BD_TENSOR(at::stack(bd::tensors(ts, n), dim)) }
int bd_chunk(bd_tensor t, int64_t chunks, int64_t dim, bd_tensor *out, int cap) {
  try {
    return bd::emit(t->t.chunk(chunks, dim), out, cap);
  }
  BD_CATCH return -1;
}
int bd_split(bd_tensor t, const int64_t *sizes, int n, int64_t dim, bd_tensor *out, int cap) {
  try {
    return bd::emit(t->t.split_with_sizes(bd::ints(sizes, n), dim), out, cap);
  }
  BD_CATCH return -1;
}
bd_tensor bd_repeat(bd_tensor t, const int64_t *sizes, int n) { BD_TENSOR(t->t.repeat(bd::ints(sizes, n))) }
bd_tensor bd_expand(bd_tensor t, const int64_t *sizes, int n) { BD_TENSOR(t->t.expand(bd::ints(sizes, n))) }
bd_tensor bd_flip(bd_tensor t, const int64_t *dims, int n) { BD_TENSOR(t->t.flip(bd::ints(dims, n))) }
bd_tensor bd_roll(bd_tensor t, const int64_t *shifts, const int64_t *dims, int n) {
  BD_TENSOR(t->t.roll(bd::ints(shifts, n), bd::ints(dims, n)))
}
bd_tensor bd_squeeze(bd_tensor t, int64_t dim, bool all) { BD_TENSOR(all ? t->t.squeeze() : t->t.squeeze(dim)) }
bd_tensor bd_unsqueeze(bd_tensor t, int64_t dim) { BD_TENSOR(t->t.unsqueeze(dim)) }
bd_tensor bd_flatten(bd_tensor t, int64_t start, int64_t end) { BD_TENSOR(t->t.flatten(start, end)) }
bd_tensor bd_contiguous(bd_tensor t) { BD_TENSOR(t->t.contiguous()) }
bd_tensor bd_contiguous_channels_last(bd_tensor t) { BD_TENSOR(t->t.contiguous(at::MemoryFormat::ChannelsLast)) }
bool bd_is_channels_last(bd_tensor t) { return t->t.is_contiguous(at::MemoryFormat::ChannelsLast); }
bd_tensor bd_clone(bd_tensor t) { BD_TENSOR(t->t.clone()) }
bd_tensor bd_as_strided(bd_tensor t, const int64_t *sizes, const int64_t *strides, int n, int64_t offset) {
  BD_TENSOR(t->t.as_strided(bd::ints(sizes, n), bd::ints(strides, n), offset))
}
bd_tensor bd_triangle(bd_tensor t, int64_t diagonal, bool upper) {
  BD_TENSOR(upper ? t->t.triu(diagonal) : t->t.tril(diagonal))
}
bd_tensor bd_nonzero(bd_tensor t) { BD_TENSOR(t->t.nonzero()) }

// ---- elementwise --------------------------------------------------------------------------------
static at::Tensor unary(bd_unary_op op, const at::Tensor &t) {
  switch (op) {
  case BD_NEG: return t.neg();
  case BD_ABS: return t.abs();
  case BD_EXP: return t.exp();
  case BD_LOG: return t.log();
  case BD_SQRT: return t.sqrt();
  case BD_RSQRT: return t.rsqrt();
  case BD_SIN: return t.sin();
  case BD_COS: return t.cos();
  case BD_TANH: return t.tanh();
  case BD_SIGMOID: return t.sigmoid();
  case BD_RELU: return t.relu();
  case BD_GELU: return at::gelu(t, "none");
  case BD_GELU_TANH: return at::gelu(t, "tanh");
  case BD_SILU: return at::silu(t);
  case BD_HARDSWISH: return at::hardswish(t);
  case BD_FLOOR: return t.floor();
  case BD_CEIL: return t.ceil();
  case BD_ROUND: return t.round();
  case BD_SIGN: return t.sign();
  case BD_RECIPROCAL: return t.reciprocal();
  case BD_SQUARE: return t.square();
  case BD_LOG1P: return t.log1p();
  case BD_EXPM1: return t.expm1();
  case BD_ERF: return t.erf();
  case BD_LOGICAL_NOT: return t.logical_not();
  case BD_ISNAN: return t.isnan();
  case BD_ISFINITE: return t.isfinite();
  case BD_REAL: return at::real(t);
  case BD_IMAG: return at::imag(t);
  case BD_ATAN: return t.atan();
  case BD_ASIN: return t.asin();
  case BD_ACOS: return t.acos();
  case BD_HARDSIGMOID: return at::hardsigmoid(t);
  case BD_LOG2: return t.log2();
  case BD_TRUNC: return t.trunc();
  }
  throw std::invalid_argument("unknown unary op " + std::to_string(static_cast<int>(op)));
}
bd_tensor bd_unary(bd_unary_op op, bd_tensor t) { BD_TENSOR(unary(op, t->t)) }

static at::Tensor binary(bd_binary_op op, const at::Tensor &a, const at::Tensor &b) {
  switch (op) {
  case BD_ADD: return at::add(a, b);
  case BD_SUB: return at::sub(a, b);
  case BD_MUL: return at::mul(a, b);
  case BD_DIV: return at::div(a, b);
  case BD_POW: return at::pow(a, b);
  case BD_MAXIMUM: return at::maximum(a, b);
  case BD_MINIMUM: return at::minimum(a, b);
  case BD_EQ: return at::eq(a, b);
  case BD_NE: return at::ne(a, b);
  case BD_LT: return at::lt(a, b);
  case BD_LE: return at::le(a, b);
  case BD_GT: return at::gt(a, b);
  case BD_GE: return at::ge(a, b);
  case BD_LOGICAL_AND: return at::logical_and(a, b);
  case BD_LOGICAL_OR: return at::logical_or(a, b);
  case BD_REMAINDER: return at::remainder(a, b);
  case BD_ATAN2: return at::atan2(a, b);
  case BD_FLOOR_DIVIDE: return at::div(a, b, "floor");
  default: break;
  }
  throw std::invalid_argument("binary op " + std::to_string(static_cast<int>(op)) + " needs a scalar operand");
}
extern "C++" {
// Small tensors: LibTorch's generic path (dispatcher, autograd, TensorIterator) costs ~0.8 µs per
// call, far more than the arithmetic, and scalar-heavy code (schedules, metrics, geometry) pays it on
// every op. Same-shape, contiguous f32/f64 CPU operands outside autograd and tracing take this direct
// loop instead; IEEE +, −, ×, ÷ give bit-identical results to LibTorch's kernels.
static bool takes_small_path(const at::Tensor &a, const at::Tensor &b) {
  const auto type = a.scalar_type();
  return a.numel() <= 4096 && (type == at::kFloat || type == at::kDouble) && b.scalar_type() == type &&
         a.layout() == at::kStrided && b.layout() == at::kStrided && a.device().is_cpu() && b.device().is_cpu() &&
         a.sizes() == b.sizes() && a.is_contiguous() && b.is_contiguous() && !a.is_neg() && !b.is_neg() &&
         !(at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad())) &&
         !torch::jit::tracer::isTracing();
}

template <typename T> static void small_loop(bd_binary_op op, const T *x, const T *y, T *z, int64_t n) {
  switch (op) {
  case BD_ADD: for (int64_t i = 0; i < n; ++i) z[i] = x[i] + y[i]; break;
  case BD_SUB: for (int64_t i = 0; i < n; ++i) z[i] = x[i] - y[i]; break;
  case BD_MUL: for (int64_t i = 0; i < n; ++i) z[i] = x[i] * y[i]; break;
  default: for (int64_t i = 0; i < n; ++i) z[i] = x[i] / y[i]; break;
  }
}

static at::Tensor small_binary(bd_binary_op op, const at::Tensor &a, const at::Tensor &b) {
  auto out = at::detail::empty_cpu(a.sizes(), a.scalar_type(), /*pin_memory=*/false, c10::nullopt);
  if (a.scalar_type() == at::kFloat)
    small_loop(op, a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), a.numel());
  else
    small_loop(op, a.data_ptr<double>(), b.data_ptr<double>(), out.data_ptr<double>(), a.numel());
  return out;
}
} // extern "C++"

bd_tensor bd_binary(bd_binary_op op, bd_tensor a, bd_tensor b) {
  try {
    if (op <= BD_DIV && takes_small_path(a->t, b->t)) return bd::wrap(small_binary(op, a->t, b->t));
    return bd::wrap(binary(op, a->t, b->t));
  }
  BD_CATCH return nullptr;
}

static at::Tensor binary_scalar(bd_binary_op op, const at::Tensor &a, double value) {
  at::Scalar s = scalar_for(a, value);
  switch (op) {
  case BD_ADD: return at::add(a, s);
  case BD_SUB: return at::sub(a, s);
  case BD_MUL: return at::mul(a, s);
  case BD_DIV: return at::div(a, s);
  case BD_POW: return at::pow(a, s);
  case BD_MAXIMUM: return at::clamp_min(a, s);
  case BD_MINIMUM: return at::clamp_max(a, s);
  case BD_EQ: return at::eq(a, s);
  case BD_NE: return at::ne(a, s);
  case BD_LT: return at::lt(a, s);
  case BD_LE: return at::le(a, s);
  case BD_GT: return at::gt(a, s);
  case BD_GE: return at::ge(a, s);
  case BD_REMAINDER: return at::remainder(a, s);
  case BD_FLOOR_DIVIDE: return at::div(a, at::scalar_tensor(s, a.options()), "floor");
  case BD_RSUB: return at::rsub(a, s);
  case BD_RDIV: return at::mul(a.reciprocal(), s); // what Python's `s / t` computes
  case BD_RPOW: return at::pow(s, a);
  default: break;
  }
  throw std::invalid_argument("binary op " + std::to_string(static_cast<int>(op)) + " has no scalar form");
}
bd_tensor bd_binary_scalar(bd_binary_op op, bd_tensor a, double s) { BD_TENSOR(binary_scalar(op, a->t, s)) }

bd_tensor bd_clamp(bd_tensor t, double lo, double hi, bool has_lo, bool has_hi) {
  BD_TENSOR(at::clamp(t->t, has_lo ? c10::optional<at::Scalar>(scalar_for(t->t, lo)) : c10::nullopt,
                      has_hi ? c10::optional<at::Scalar>(scalar_for(t->t, hi)) : c10::nullopt))
}
bd_tensor bd_lerp(bd_tensor a, bd_tensor b, double weight) { BD_TENSOR(at::lerp(a->t, b->t, weight)) }

int bd_inplace_binary(bd_binary_op op, bd_tensor a, bd_tensor b, double alpha) {
  try {
    switch (op) {
    case BD_ADD: a->t.add_(b->t, alpha); break;
    case BD_SUB: a->t.sub_(b->t, alpha); break;
    case BD_MUL: a->t.mul_(b->t); break;
    case BD_DIV: a->t.div_(b->t); break;
    case BD_MAXIMUM: at::maximum_out(a->t, a->t, b->t); break;
    default: throw std::invalid_argument("in-place op " + std::to_string(static_cast<int>(op)) + " unsupported");
    }
    return 0;
  }
  BD_CATCH return -1;
}
int bd_inplace_scalar(bd_binary_op op, bd_tensor a, double value) {
  try {
    at::Scalar s = scalar_for(a->t, value);
    switch (op) {
    case BD_ADD: a->t.add_(s); break;
    case BD_SUB: a->t.sub_(s); break;
    case BD_MUL: a->t.mul_(s); break;
    case BD_DIV: a->t.div_(s); break;
    case BD_MAXIMUM: a->t.clamp_min_(s); break;
    case BD_MINIMUM: a->t.clamp_max_(s); break;
    default: throw std::invalid_argument("in-place op " + std::to_string(static_cast<int>(op)) + " unsupported");
    }
    return 0;
  }
  BD_CATCH return -1;
}
int bd_copy_(bd_tensor dst, bd_tensor src) { BD_STATUS(dst->t.copy_(src->t)) }
int bd_fill_(bd_tensor t, double value) { BD_STATUS(t->t.fill_(scalar_for(t->t, value))) }
int bd_addcmul_(bd_tensor t, bd_tensor a, bd_tensor b, double value) { BD_STATUS(t->t.addcmul_(a->t, b->t, value)) }
int bd_addcdiv_(bd_tensor t, bd_tensor a, bd_tensor b, double value) { BD_STATUS(t->t.addcdiv_(a->t, b->t, value)) }
int bd_unary_(bd_unary_op op, bd_tensor t) {
  try {
    switch (op) {
    case BD_SQRT: t->t.sqrt_(); break;
    case BD_NEG: t->t.neg_(); break;
    case BD_EXP: t->t.exp_(); break;
    default: throw std::invalid_argument("in-place unary op " + std::to_string(static_cast<int>(op)) + " unsupported");
    }
    return 0;
  }
  BD_CATCH return -1;
}
int bd_normal_(bd_tensor t, double mean, double std, bd_generator gen) {
  BD_STATUS(t->t.normal_(mean, std, bd::optional(gen)))
}
int bd_uniform_(bd_tensor t, double lo, double hi, bd_generator gen) {
  BD_STATUS(t->t.uniform_(lo, hi, bd::optional(gen)))
}

} // extern "C"
