// Autograd: gradients, grad modes and gradient checkpointing of a Swift closure.
#include "bridge.h"

#include <ATen/autocast_mode.h>

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {
// Keeps a Swift closure alive for as long as the autograd graph may call it again.
struct ClosureHolder : torch::CustomClassHolder {
  bd_closure fn;
  void *ctx;
  void (*release)(void *);
  int cap;
  size_t explicit_inputs; // the rest of the checkpoint's inputs are parameters fn reads itself
  ClosureHolder(bd_closure f, void *c, void (*r)(void *), int k, size_t n)
      : fn(f), ctx(c), release(r), cap(k), explicit_inputs(n) {}
  ~ClosureHolder() override {
    if (release) release(ctx);
  }

  std::vector<at::Tensor> call(const std::vector<at::Tensor> &inputs) const {
    return bd::call_closure(fn, ctx, inputs, cap, "checkpointed closure");
  }
};

at::Generator default_generator(const std::vector<at::Tensor> &inputs) {
  auto device = inputs.empty() ? at::Device(at::kCPU) : inputs.front().device();
  return device.is_cuda() ? at::globalContext().defaultGenerator(device) : at::detail::getDefaultCPUGenerator();
}

struct Checkpoint : torch::autograd::Function<Checkpoint> {
  static variable_list forward(AutogradContext *ctx, at::TensorList inputs, c10::intrusive_ptr<ClosureHolder> holder) {
    auto generator = default_generator(inputs.vec());
    at::Tensor rng;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng = generator.get_state();
    }
    ctx->saved_data["closure"] = c10::IValue::make_capsule(holder);
    ctx->saved_data["rng"] = rng;
    auto explicit_inputs = inputs.slice(0, holder->explicit_inputs).vec();
    ctx->save_for_backward(explicit_inputs);
    ctx->saved_data["parameters"] = static_cast<int64_t>(inputs.size() - holder->explicit_inputs);
    return holder->call(explicit_inputs); // Function::apply already runs this without grad
  }

  static variable_list backward(AutogradContext *ctx, variable_list grad_outputs) {
    auto holder = ctx->saved_data["closure"].toCapsule();
    auto *closure = static_cast<ClosureHolder *>(holder.get());
    auto saved = ctx->get_saved_variables();
    std::vector<at::Tensor> inputs;
    for (const auto &x : saved) inputs.push_back(x.detach().requires_grad_(x.requires_grad()));

    // Recompute with the random state of the forward pass (dropout must draw the same mask).
    auto generator = default_generator(inputs);
    at::Tensor current;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      current = generator.get_state();
      generator.set_state(ctx->saved_data["rng"].toTensor());
    }
    std::vector<at::Tensor> outputs;
    {
      at::AutoGradMode enable(true);
      outputs = closure->call(inputs);
    }
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(current);
    }

    std::vector<at::Tensor> roots, grads;
    for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    variable_list result;
    for (const auto &x : inputs) result.push_back(x.requires_grad() ? x.grad() : at::Tensor());
    // Parameters already received their gradients from the inner backward.
    for (int64_t i = 0; i < ctx->saved_data["parameters"].toInt(); ++i) result.push_back(at::Tensor());
    result.push_back(at::Tensor()); // the closure holder
    return result;
  }
};
} // namespace

extern "C" {

int bd_set_requires_grad(bd_tensor t, bool flag) { BD_STATUS(t->t.set_requires_grad(flag)) }
bool bd_requires_grad(bd_tensor t) { return t->t.requires_grad(); }
int bd_grad(bd_tensor t, bd_tensor *out) {
  try {
    const auto &g = t->t.grad();
    *out = g.defined() ? bd::wrap(g) : nullptr;
    return 0;
  }
  BD_CATCH return -1;
}
int bd_set_grad(bd_tensor t, bd_tensor g) { BD_STATUS(t->t.mutable_grad() = g ? g->t : at::Tensor()) }
int bd_backward(bd_tensor t, bd_tensor grad, bool retain_graph, bool create_graph) {
  BD_STATUS(t->t.backward(grad ? grad->t : at::Tensor(), retain_graph, create_graph))
}
int bd_autograd_grad(const bd_tensor *outputs, int nout, const bd_tensor *inputs, int nin,
                     const bd_tensor *grad_outputs, bool retain_graph, bool create_graph, bool allow_unused,
                     bd_tensor *out) {
  try {
    std::vector<at::Tensor> grads_in;
    if (grad_outputs)
      for (int i = 0; i < nout; ++i) grads_in.push_back(grad_outputs[i] ? grad_outputs[i]->t : at::Tensor());
    auto grads = torch::autograd::grad(bd::tensors(outputs, nout), bd::tensors(inputs, nin), grads_in,
                                       retain_graph, create_graph, allow_unused);
    for (size_t i = 0; i < grads.size(); ++i) out[i] = grads[i].defined() ? bd::wrap(grads[i]) : nullptr;
    return 0;
  }
  BD_CATCH return -1;
}
bd_tensor bd_detach(bd_tensor t) { BD_TENSOR(t->t.detach()) }
bool bd_set_grad_enabled(bool enabled) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(enabled);
  return previous;
}
bool bd_is_grad_enabled(void) { return at::GradMode::is_enabled(); }
void *bd_inference_mode_enter(void) { return new c10::InferenceMode(true); }
void bd_inference_mode_exit(void *guard) { delete static_cast<c10::InferenceMode *>(guard); }

int bd_autocast_enter(int device_type, int dtype, int *previous_enabled, int *previous_dtype) {
  try {
    auto type = static_cast<at::ScalarType>(dtype);
    if (device_type == BD_CUDA) {
      *previous_enabled = at::autocast::is_enabled();
      *previous_dtype = static_cast<int>(at::autocast::get_autocast_gpu_dtype());
      at::autocast::set_autocast_gpu_dtype(type);
      at::autocast::set_enabled(true);
    } else {
      *previous_enabled = at::autocast::is_cpu_enabled();
      *previous_dtype = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
      at::autocast::set_autocast_cpu_dtype(type);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
    return 0;
  }
  BD_CATCH return -1;
}

void bd_autocast_exit(int device_type, int previous_enabled, int previous_dtype) {
  // The cache of casted weights is only valid inside the outermost region.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  auto type = static_cast<at::ScalarType>(previous_dtype);
  if (device_type == BD_CUDA) {
    at::autocast::set_autocast_gpu_dtype(type);
    at::autocast::set_enabled(previous_enabled != 0);
  } else {
    at::autocast::set_autocast_cpu_dtype(type);
    at::autocast::set_cpu_enabled(previous_enabled != 0);
  }
}

int bd_checkpoint(bd_closure fn, void *ctx, void (*release)(void *), const bd_tensor *inputs, int n, int nparams,
                  bd_tensor *out, int cap) {
  c10::intrusive_ptr<ClosureHolder> holder;
  try {
    holder = c10::make_intrusive<ClosureHolder>(fn, ctx, release, cap, static_cast<size_t>(n));
  } catch (...) {
    if (release) release(ctx);
    bd::set_error("out of memory");
    return -1;
  }
  try {
    auto tensors = bd::tensors(inputs, n + nparams);
    auto outputs = Checkpoint::apply(at::TensorList(tensors), holder);
    return bd::emit(outputs, out, cap);
  }
  BD_CATCH return -1;
}

} // extern "C"
