// Internal to the bridge: handle layouts and the one error-capturing mechanism.
#pragma once
#include <torch/torch.h>
#include <string>
#include "ctorch.h"

struct bd_tensor_s {
  at::Tensor t;
};
struct bd_generator_s {
  at::Generator g;
};

namespace bd {
void set_error(const std::string &message);

inline bd_tensor wrap(at::Tensor t) { return new bd_tensor_s{std::move(t)}; }
inline c10::optional<at::Tensor> optional(bd_tensor h) {
  return h ? c10::optional<at::Tensor>(h->t) : c10::nullopt;
}
inline c10::optional<at::Generator> optional(bd_generator g) {
  return g ? c10::optional<at::Generator>(g->g) : c10::nullopt;
}
inline at::TensorOptions options(int dtype, int dev, int idx) {
  auto device = dev == BD_CUDA ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(idx < 0 ? 0 : idx))
                               : at::Device(at::kCPU);
  return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device);
}
inline at::IntArrayRef ints(const int64_t *p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }
std::vector<at::Tensor> tensors(const bd_tensor *ts, int n);
// Writes owned handles for `ts` into out[0..<cap]; fails when they do not fit.
int emit(const std::vector<at::Tensor> &ts, bd_tensor *out, int cap);
// Calls a Swift closure on `inputs` (at most `cap` outputs). A failure inside the closure becomes a
// C++ exception carrying its message, so the caller's BD_CATCH reports it; used by gradient
// checkpointing and by TorchScript tracing.
std::vector<at::Tensor> call_closure(bd_closure fn, void *ctx, const std::vector<at::Tensor> &inputs, int cap,
                                     const char *what);
} // namespace bd

// Every C entry point wraps its body in one of these: no exception crosses into Swift.
#define BD_CATCH                                                                                   \
  catch (const c10::Error &e) { bd::set_error(e.what_without_backtrace()); }                        \
  catch (const std::exception &e) { bd::set_error(e.what()); }                                      \
  catch (...) { bd::set_error("unknown C++ exception"); }

#define BD_TENSOR(expr)                                                                             \
  try {                                                                                             \
    return bd::wrap(expr);                                                                          \
  }                                                                                                 \
  BD_CATCH return nullptr;

#define BD_STATUS(body)                                                                             \
  try {                                                                                             \
    body;                                                                                           \
    return 0;                                                                                       \
  }                                                                                                 \
  BD_CATCH return -1;
