// TorchScript: load and run modules, and export Swift forward functions by tracing.
#include "bridge.h"

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>

struct bd_module_s {
  torch::jit::Module m;
};

namespace {
// One compilation unit holds the class types of every module built from Swift; names are mangled
// so that two exports in one process do not clash.
std::shared_ptr<torch::jit::CompilationUnit> export_unit() {
  static auto unit = std::make_shared<torch::jit::CompilationUnit>();
  return unit;
}

void flatten_tensors(const c10::IValue &value, std::vector<at::Tensor> &out) {
  if (value.isTensor()) out.push_back(value.toTensor());
  else if (value.isTuple())
    for (const auto &v : value.toTupleRef().elements()) flatten_tensors(v, out);
  else if (value.isList())
    for (const auto &v : value.toListRef()) flatten_tensors(v, out);
  else throw std::invalid_argument("TorchScript output of type " + value.tagKind() + " is not a tensor");
}

} // namespace

extern "C" {

bd_module bd_jit_load(const char *path, int dev, int idx) {
  try {
    auto device = dev == BD_CUDA ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(idx)) : at::Device(at::kCPU);
    return new bd_module_s{torch::jit::load(path, device)};
  }
  BD_CATCH return nullptr;
}
void bd_jit_free(bd_module m) { delete m; }

int bd_jit_run_method(bd_module m, const char *method, const bd_tensor *inputs, int n, bd_tensor *out, int cap) {
  try {
    std::vector<c10::IValue> stack;
    for (int i = 0; i < n; ++i) stack.emplace_back(inputs[i]->t);
    auto result = m->m.get_method(method)(std::move(stack));
    std::vector<at::Tensor> tensors;
    flatten_tensors(result, tensors);
    return bd::emit(tensors, out, cap);
  }
  BD_CATCH return -1;
}

int bd_jit_named_tensors(bd_module m, bool buffers, bd_named_tensor_fn fn, void *ctx) {
  try {
    if (buffers)
      for (const auto &item : m->m.named_buffers(/*recurse=*/true)) fn(ctx, item.name.c_str(), bd::wrap(item.value));
    else
      for (const auto &item : m->m.named_parameters(/*recurse=*/true)) fn(ctx, item.name.c_str(), bd::wrap(item.value));
    return 0;
  }
  BD_CATCH return -1;
}

int bd_jit_set_training(bd_module m, bool training) { BD_STATUS(m->m.train(training)) }

bd_module bd_jit_module_new(const char *type_name) {
  try {
    return new bd_module_s{torch::jit::Module(c10::QualifiedName(std::string("__torch__.") + type_name), export_unit(),
                                              /*shouldMangle=*/true)};
  }
  BD_CATCH return nullptr;
}
int bd_jit_register_tensor(bd_module m, const char *name, bd_tensor t, bool is_buffer) {
  try {
    if (is_buffer) m->m.register_buffer(name, t->t);
    else m->m.register_parameter(name, t->t, /*is_buffer=*/false);
    return 0;
  }
  BD_CATCH return -1;
}
int bd_jit_register_module(bd_module parent, const char *name, bd_module child) {
  BD_STATUS(parent->m.register_module(name, child->m))
}

int bd_jit_trace(bd_module m, const char *method, bd_closure fn, void *ctx, const bd_tensor *inputs, int n) {
  try {
    torch::jit::Stack stack;
    for (int i = 0; i < n; ++i) stack.emplace_back(inputs[i]->t);
    constexpr int kMaxOutputs = 64;
    auto traced = [&](torch::jit::Stack in) -> torch::jit::Stack {
      std::vector<at::Tensor> args;
      for (const auto &v : in) args.push_back(v.toTensor());
      torch::jit::Stack result;
      for (auto &t : bd::call_closure(fn, ctx, args, kMaxOutputs, "traced closure")) result.emplace_back(std::move(t));
      return result;
    };
    auto no_names = [](const torch::autograd::Variable &) { return std::string(); };
    std::shared_ptr<torch::jit::tracer::TracingState> state;
    try {
      state = torch::jit::tracer::trace(std::move(stack), traced, no_names, /*strict=*/true,
                                        /*force_outplace=*/false, &m->m)
                  .first;
    } catch (...) {
      torch::jit::tracer::abandon(); // leave no half-open trace on this thread
      throw;
    }
    auto name = c10::QualifiedName(*m->m.type()->name(), method);
    auto function = m->m._ivalue()->compilation_unit()->create_function(name, state->graph);
    m->m.type()->addMethod(function);
    return 0;
  }
  BD_CATCH return -1;
}

int bd_jit_save(bd_module m, const char *path) { BD_STATUS(m->m.save(path)) }

} // extern "C"
