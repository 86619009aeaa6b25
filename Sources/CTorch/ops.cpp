// Reductions, linear algebra and neural-network functions.
#include "bridge.h"

#include <ATen/autocast_mode.h>

#include <cmath>
#include <numeric>

namespace F = torch::nn::functional;

namespace {
std::vector<int64_t> reduction_dims(const at::Tensor &t, const int64_t *dims, int n) {
  if (n > 0) return std::vector<int64_t>(dims, dims + n);
  std::vector<int64_t> all(static_cast<size_t>(t.dim()));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

// Reductions that LibTorch 1.13 only offers one dimension at a time.
template <typename Op> at::Tensor reduce_each(at::Tensor t, std::vector<int64_t> dims, bool keepdim, Op op) {
  for (auto &d : dims) d = at::maybe_wrap_dim(d, t.dim());
  std::sort(dims.rbegin(), dims.rend()); // highest first, so lower indices stay valid
  for (auto d : dims) t = op(t, d, keepdim);
  return t;
}

std::pair<int64_t, int64_t> pair(const int64_t *p) { return {p[0], p[1]}; }
} // namespace

extern "C" {

// ---- reductions ---------------------------------------------------------------------------------
bd_tensor bd_reduce(bd_reduce_op op, bd_tensor h, const int64_t *dims, int ndims, bool keepdim) {
  try {
    const at::Tensor &t = h->t;
    auto ds = reduction_dims(t, dims, ndims);
    switch (op) {
    case BD_SUM: return bd::wrap(t.dim() == 0 ? t.sum() : t.sum(ds, keepdim));
    case BD_MEAN: return bd::wrap(t.dim() == 0 ? t.mean() : t.mean(ds, keepdim));
    case BD_AMAX: return bd::wrap(t.amax(ds, keepdim));
    case BD_AMIN: return bd::wrap(t.amin(ds, keepdim));
    case BD_LOGSUMEXP: return bd::wrap(t.dim() == 0 ? t.clone() : t.logsumexp(ds, keepdim));
    case BD_PROD:
      return bd::wrap(reduce_each(t, ds, keepdim, [](const at::Tensor &x, int64_t d, bool k) { return x.prod(d, k); }));
    case BD_ANY:
      return bd::wrap(reduce_each(t, ds, keepdim, [](const at::Tensor &x, int64_t d, bool k) { return x.any(d, k); }));
    case BD_ALL:
      return bd::wrap(reduce_each(t, ds, keepdim, [](const at::Tensor &x, int64_t d, bool k) { return x.all(d, k); }));
    }
    throw std::invalid_argument("unknown reduction " + std::to_string(static_cast<int>(op)));
  }
  BD_CATCH return nullptr;
}
bd_tensor bd_var(bd_tensor h, const int64_t *dims, int ndims, int64_t correction, bool keepdim, bool std) {
  try {
    auto ds = reduction_dims(h->t, dims, ndims);
    return bd::wrap(std ? at::std(h->t, at::OptionalIntArrayRef(ds), correction, keepdim)
                        : at::var(h->t, at::OptionalIntArrayRef(ds), correction, keepdim));
  }
  BD_CATCH return nullptr;
}
int bd_max_dim(bd_tensor t, int64_t dim, bool keepdim, bool max, bd_tensor *values, bd_tensor *indices) {
  try {
    auto r = max ? t->t.max(dim, keepdim) : t->t.min(dim, keepdim);
    *values = bd::wrap(std::get<0>(r));
    *indices = bd::wrap(std::get<1>(r));
    return 0;
  }
  BD_CATCH return -1;
}
bd_tensor bd_argmax(bd_tensor t, int64_t dim, bool has_dim, bool keepdim, bool max) {
  auto d = has_dim ? c10::optional<int64_t>(dim) : c10::nullopt;
  BD_TENSOR(max ? t->t.argmax(d, keepdim) : t->t.argmin(d, keepdim))
}
bd_tensor bd_cumsum(bd_tensor t, int64_t dim) { BD_TENSOR(t->t.cumsum(dim)) }
int bd_sort(bd_tensor t, int64_t dim, bool descending, bd_tensor *values, bd_tensor *indices) {
  try {
    auto r = t->t.sort(dim, descending);
    *values = bd::wrap(std::get<0>(r));
    *indices = bd::wrap(std::get<1>(r));
    return 0;
  }
  BD_CATCH return -1;
}
int bd_topk(bd_tensor t, int64_t k, int64_t dim, bool largest, bd_tensor *values, bd_tensor *indices) {
  try {
    auto r = t->t.topk(k, dim, largest, /*sorted=*/true);
    *values = bd::wrap(std::get<0>(r));
    *indices = bd::wrap(std::get<1>(r));
    return 0;
  }
  BD_CATCH return -1;
}

// ---- linear algebra -----------------------------------------------------------------------------
bd_tensor bd_matmul(bd_tensor a, bd_tensor b) { BD_TENSOR(at::matmul(a->t, b->t)) }
bd_tensor bd_bmm(bd_tensor a, bd_tensor b) { BD_TENSOR(at::bmm(a->t, b->t)) }
bd_tensor bd_baddbmm(bd_tensor input, bd_tensor a, bd_tensor b, double beta, double alpha) {
  // With beta = 0 PyTorch ignores `input` (documented), but LibTorch 1.13's CPU kernel now and then
  // returns inf/NaN there (uninitialised memory reaching NaN·0: a flaky op-fixture failure). Same
  // result and gradients without it.
  if (beta == 0) {
    BD_TENSOR(alpha == 1 ? at::bmm(a->t, b->t) : at::bmm(a->t, b->t).mul_(alpha))
  }
  BD_TENSOR(at::baddbmm(input->t, a->t, b->t, beta, alpha))
}
bd_tensor bd_einsum(const char *equation, const bd_tensor *ts, int n) {
  BD_TENSOR(at::einsum(equation, bd::tensors(ts, n)))
}
bd_tensor bd_linear(bd_tensor x, bd_tensor w, bd_tensor b) { BD_TENSOR(at::linear(x->t, w->t, bd::optional(b))) }
int bd_linalg_eigh(bd_tensor t, bool upper, bd_tensor *values, bd_tensor *vectors) {
  try {
    auto r = at::linalg_eigh(t->t, upper ? "U" : "L");
    *values = bd::wrap(std::get<0>(r));
    *vectors = bd::wrap(std::get<1>(r));
    return 0;
  }
  BD_CATCH return -1;
}
bd_tensor bd_linalg_eigvals(bd_tensor t) { BD_TENSOR(at::linalg_eigvals(t->t)) }
int bd_linalg_svd(bd_tensor t, bool full_matrices, bd_tensor *u, bd_tensor *s, bd_tensor *vh) {
  try {
    auto r = at::linalg_svd(t->t, full_matrices);
    *u = bd::wrap(std::get<0>(r));
    *s = bd::wrap(std::get<1>(r));
    *vh = bd::wrap(std::get<2>(r));
    return 0;
  }
  BD_CATCH return -1;
}
bd_tensor bd_linalg_inv(bd_tensor t) { BD_TENSOR(at::linalg_inv(t->t)) }
bd_tensor bd_linalg_det(bd_tensor t) { BD_TENSOR(at::linalg_det(t->t)) }
bd_tensor bd_linalg_solve(bd_tensor a, bd_tensor b) { BD_TENSOR(at::linalg_solve(a->t, b->t)) }
bd_tensor bd_linalg_matrix_norm(bd_tensor t, const char *ord) {
  try {
    std::string o(ord);
    if (o == "fro" || o == "nuc") return bd::wrap(at::linalg_matrix_norm(t->t, o));
    double value = o == "inf" ? INFINITY : o == "-inf" ? -INFINITY : std::stod(o);
    return bd::wrap(at::linalg_matrix_norm(t->t, at::Scalar(value)));
  }
  BD_CATCH return nullptr;
}
bd_tensor bd_linalg_vector_norm(bd_tensor t, double ord, const int64_t *dims, int ndims, bool keepdim) {
  auto d = ndims > 0 ? at::OptionalIntArrayRef(bd::ints(dims, ndims)) : at::OptionalIntArrayRef(c10::nullopt);
  BD_TENSOR(at::linalg_vector_norm(t->t, ord, d, keepdim))
}

// ---- neural-network functions -------------------------------------------------------------------
bd_tensor bd_conv2d(bd_tensor x, bd_tensor w, bd_tensor b, const int64_t *stride, const int64_t *padding,
                    const int64_t *dilation, int64_t groups) {
  BD_TENSOR(at::conv2d(x->t, w->t, bd::optional(b), bd::ints(stride, 2), bd::ints(padding, 2),
                       bd::ints(dilation, 2), groups))
}
bd_tensor bd_conv_transpose2d(bd_tensor x, bd_tensor w, bd_tensor b, const int64_t *stride, const int64_t *padding,
                              const int64_t *output_padding, int64_t groups, const int64_t *dilation) {
  BD_TENSOR(at::conv_transpose2d(x->t, w->t, bd::optional(b), bd::ints(stride, 2), bd::ints(padding, 2),
                                 bd::ints(output_padding, 2), groups, bd::ints(dilation, 2)))
}
bd_tensor bd_avg_pool2d(bd_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                        bool ceil_mode, bool count_include_pad) {
  BD_TENSOR(at::avg_pool2d(x->t, bd::ints(kernel, 2), bd::ints(stride, 2), bd::ints(padding, 2), ceil_mode,
                           count_include_pad))
}
bd_tensor bd_max_pool2d(bd_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                        const int64_t *dilation, bool ceil_mode) {
  BD_TENSOR(at::max_pool2d(x->t, bd::ints(kernel, 2), bd::ints(stride, 2), bd::ints(padding, 2),
                           bd::ints(dilation, 2), ceil_mode))
}
bd_tensor bd_adaptive_pool2d(bd_tensor x, const int64_t *output_size, bool max) {
  BD_TENSOR(max ? std::get<0>(at::adaptive_max_pool2d(x->t, bd::ints(output_size, 2)))
                : at::adaptive_avg_pool2d(x->t, bd::ints(output_size, 2)))
}
// Under autocast a norm may receive bf16/f16 activations with float32 weights; LibTorch 1.13's CPU
// autocast does not cast group_norm itself, so normalise in the weights' dtype (the float32 policy
// autocast applies to norms elsewhere).
static at::Tensor norm_input(const at::Tensor &x, bd_tensor w) {
  return w && w->t.scalar_type() != x.scalar_type() && at::autocast::is_cpu_enabled() | at::autocast::is_enabled()
             ? x.to(w->t.scalar_type())
             : x;
}
bd_tensor bd_group_norm(bd_tensor x, int64_t groups, bd_tensor w, bd_tensor b, double eps) {
  BD_TENSOR(at::group_norm(norm_input(x->t, w), groups, bd::optional(w), bd::optional(b), eps))
}
bd_tensor bd_layer_norm(bd_tensor x, const int64_t *shape, int n, bd_tensor w, bd_tensor b, double eps) {
  BD_TENSOR(at::layer_norm(norm_input(x->t, w), bd::ints(shape, n), bd::optional(w), bd::optional(b), eps))
}
bd_tensor bd_batch_norm(bd_tensor x, bd_tensor w, bd_tensor b, bd_tensor mean, bd_tensor var, bool training,
                        double momentum, double eps) {
  BD_TENSOR(at::batch_norm(x->t, bd::optional(w), bd::optional(b), bd::optional(mean), bd::optional(var), training,
                           momentum, eps, /*cudnn_enabled=*/true))
}
bd_tensor bd_softmax(bd_tensor x, int64_t dim, bool log, int dtype) {
  auto type = dtype < 0 ? c10::optional<at::ScalarType>() : c10::optional<at::ScalarType>(static_cast<at::ScalarType>(dtype));
  BD_TENSOR(log ? at::log_softmax(x->t, dim, type) : at::softmax(x->t, dim, type))
}
bd_tensor bd_dropout(bd_tensor x, double p, bool train) { BD_TENSOR(at::dropout(x->t, p, train)) }
bd_tensor bd_embedding(bd_tensor weight, bd_tensor indices) { BD_TENSOR(at::embedding(weight->t, indices->t)) }

bd_tensor bd_interpolate(bd_tensor x, const int64_t *size, const double *scale, int mode, int align_corners,
                         bool antialias) {
  try {
    auto options = F::InterpolateFuncOptions();
    // Explicit defaults (scale factors used as given, corners not aligned) keep LibTorch from
    // printing its warnings about them; the results are those of the implicit defaults.
    if (size) options.size(std::vector<int64_t>(size, size + 2));
    else options.scale_factor(std::vector<double>(scale, scale + 2)).recompute_scale_factor(false);
    switch (mode) {
    case 0: options.mode(torch::kNearest); break;
    case 1: options.mode(torch::kBilinear); break;
    case 2: options.mode(torch::kBicubic); break;
    default: throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
    }
    if (align_corners >= 0) options.align_corners(align_corners == 1);
    else if (mode != 0) options.align_corners(false);
    options.antialias(antialias);
    return bd::wrap(F::interpolate(x->t, options));
  }
  BD_CATCH return nullptr;
}
bd_tensor bd_grid_sample(bd_tensor x, bd_tensor grid, int mode, int padding, bool align_corners) {
  // Codes follow at::grid_sampler's own numbering (interpolation 0/1/2, padding 0/1/2).
  BD_TENSOR(at::grid_sampler(x->t, grid->t, mode, padding, align_corners))
}
bd_tensor bd_pad(bd_tensor x, const int64_t *pads, int n, int mode, double value) {
  try {
    auto options = F::PadFuncOptions(std::vector<int64_t>(pads, pads + n));
    switch (mode) {
    case 0: options.mode(torch::kConstant).value(value); break;
    case 1: options.mode(torch::kReflect); break;
    case 2: options.mode(torch::kReplicate); break;
    case 3: options.mode(torch::kCircular); break;
    default: throw std::invalid_argument("unknown padding mode " + std::to_string(mode));
    }
    return bd::wrap(F::pad(x->t, options));
  }
  BD_CATCH return nullptr;
}
bd_tensor bd_sdpa(bd_tensor q, bd_tensor k, bd_tensor v, bd_tensor mask, bool causal, double scale) {
  try {
    const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q->t.size(-1)));
    auto scores = at::matmul(q->t, k->t.transpose(-2, -1)).mul_(s);
    if (causal) {
      auto keep = at::ones({scores.size(-2), scores.size(-1)}, scores.options().dtype(at::kBool)).tril();
      scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
    }
    if (mask) {
      scores = mask->t.scalar_type() == at::kBool
                   ? scores.masked_fill(mask->t.logical_not(), -std::numeric_limits<double>::infinity())
                   : scores + mask->t;
    }
    return bd::wrap(at::matmul(scores.softmax(-1), v->t));
  }
  BD_CATCH return nullptr;
}
bd_tensor bd_mse_loss(bd_tensor a, bd_tensor b, int reduction) { BD_TENSOR(at::mse_loss(a->t, b->t, reduction)) }
bd_tensor bd_cross_entropy(bd_tensor logits, bd_tensor target, int reduction) {
  BD_TENSOR(at::cross_entropy_loss(logits->t, target->t, {}, reduction))
}

} // extern "C"
