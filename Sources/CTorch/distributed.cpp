// Data parallelism over LibTorch's c10d (docs/distributed.md; Gloo's headers come from Debian's
// libgloo-dev): a TCPStore rendezvous and a Gloo or NCCL process group. Collectives run in place and
// block until they finish or the group's timeout passes; a peer that died or hangs becomes an error
// naming the operation, never a hang. NCCL is compiled in only where Package.swift found a CUDA
// LibTorch and the CUDA and NCCL headers (BACKDROP_NCCL).
#include "bridge.h"
#include <torch/version.h>

// LibTorch builds with Gloo define this for their own sources; the header is empty without it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef BACKDROP_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

// The class the backends derive from: c10d::ProcessGroup in 1.x, c10d::Backend since 2.0.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct bd_process_group_s {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> group;
  std::chrono::milliseconds timeout;
  // Where the collectives' tensors must be: the rank's GPU for NCCL; for Gloo, wherever they are.
  c10::optional<c10::Device> device;
};

namespace {
void wait(bd_process_group g, c10::intrusive_ptr<c10d::Work> work, const char *what) {
  // Work::wait throws on a peer's failure; on a timeout it throws too (Gloo enforces the group's,
  // NCCL's work polls until it).
  if (!work->wait(g->timeout)) throw std::runtime_error(std::string(what) + " did not finish within the timeout");
}

// `t` where the group's collectives run (a copy when it is elsewhere, e.g. a CPU loss under NCCL),
// and after the collective its result written back into `t`.
template <typename Run> void onGroupDevice(bd_process_group g, at::Tensor &t, Run run) {
  if (!g->device || t.device() == *g->device) return run(t);
  auto moved = t.to(*g->device);
  run(moved);
  t.copy_(moved);
}

c10::intrusive_ptr<Collectives> makeGroup(const c10::intrusive_ptr<c10d::Store> &store, const char *host, int rank,
                                          int world, std::chrono::milliseconds timeout, int backend, int device) {
  if (backend == BD_DIST_NCCL) {
#ifdef BACKDROP_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
    (void)device;
    throw std::runtime_error("this build of Backdrop has no NCCL: build it against a CUDA LibTorch with the CUDA and "
                             "NCCL headers found (CUDA_HOME, NCCL_INCLUDE_DIR; docs/distributed.md#nccl), or use gloo");
#endif
  }
  auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
  gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gloo);
}
} // namespace

extern "C" {

int bd_dist_has_nccl(void) {
#ifdef BACKDROP_NCCL
  return 1;
#else
  return 0;
#endif
}

bd_process_group bd_dist_init(const char *host, int port, int rank, int world, int64_t timeout_ms, int backend,
                              int device) {
  try {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = rank == 0;
    options.numWorkers = static_cast<std::size_t>(world);
    options.waitWorkers = true;
    options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("backdrop", store);
    auto group = makeGroup(prefixed, host, rank, world, timeout, backend, device);
    c10::optional<c10::Device> where;
    if (backend == BD_DIST_NCCL) where = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device));
    return new bd_process_group_s{store, group, timeout, where};
  }
  BD_CATCH return nullptr;
}

void bd_dist_free(bd_process_group g) { delete g; }

int bd_dist_all_reduce_sum(bd_process_group g, bd_tensor t) {
  BD_STATUS({
    onGroupDevice(g, t->t, [&](at::Tensor &x) {
      std::vector<at::Tensor> tensors{x};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      wait(g, g->group->allreduce(tensors, options), "all-reduce");
    });
  })
}

int bd_dist_broadcast(bd_process_group g, bd_tensor t, int root) {
  BD_STATUS({
    onGroupDevice(g, t->t, [&](at::Tensor &x) {
      std::vector<at::Tensor> tensors{x};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      wait(g, g->group->broadcast(tensors, options), "broadcast");
    });
  })
}

int bd_dist_all_gather(bd_process_group g, bd_tensor input, bd_tensor output) {
  BD_STATUS({
    at::Tensor in = input->t.contiguous();
    onGroupDevice(g, in, [&](at::Tensor &x) {
      onGroupDevice(g, output->t, [&](at::Tensor &out) {
        // The output's rank slices are views of one tensor: the backend copies each rank's part into them.
        std::vector<std::vector<at::Tensor>> outputs{out.chunk(g->group->getSize(), 0)};
        std::vector<at::Tensor> inputs{x};
        wait(g, g->group->allgather(outputs, inputs), "all-gather");
      });
    });
  })
}

int bd_dist_barrier(bd_process_group g) {
  BD_STATUS({ wait(g, g->group->barrier(c10d::BarrierOptions()), "barrier"); })
}

} // extern "C"
