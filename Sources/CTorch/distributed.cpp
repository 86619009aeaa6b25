// Data parallelism over LibTorch's c10d (docs/distributed.md; Gloo's headers come from Debian's libgloo-dev): a TCPStore rendezvous and a Gloo
// process group. Collectives run in place and block until they finish or the group's timeout
// passes; a peer that died or hangs becomes an error naming the operation, never a hang.
#include "bridge.h"

// LibTorch builds with Gloo define this for their own sources; the header is empty without it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

struct bd_process_group_s {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout;
};

namespace {
void wait(bd_process_group g, c10::intrusive_ptr<c10d::Work> work, const char *what) {
  // Work::wait throws on a peer's failure; on a timeout it throws too (Gloo enforces the group's).
  if (!work->wait(g->timeout)) throw std::runtime_error(std::string(what) + " did not finish within the timeout");
}
} // namespace

extern "C" {

bd_process_group bd_dist_init(const char *host, int port, int rank, int world, int64_t timeout_ms) {
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
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, gloo);
    return new bd_process_group_s{store, group, timeout};
  }
  BD_CATCH return nullptr;
}

void bd_dist_free(bd_process_group g) { delete g; }

int bd_dist_all_reduce_sum(bd_process_group g, bd_tensor t) {
  BD_STATUS({
    std::vector<at::Tensor> tensors{t->t};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    wait(g, g->group->allreduce(tensors, options), "all-reduce");
  })
}

int bd_dist_broadcast(bd_process_group g, bd_tensor t, int root) {
  BD_STATUS({
    std::vector<at::Tensor> tensors{t->t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    wait(g, g->group->broadcast(tensors, options), "broadcast");
  })
}

int bd_dist_all_gather(bd_process_group g, bd_tensor input, bd_tensor output) {
  BD_STATUS({
    // The output's rank slices are views of one tensor: Gloo copies each rank's part into them.
    std::vector<std::vector<at::Tensor>> outputs{output->t.chunk(g->group->getSize(), 0)};
    std::vector<at::Tensor> inputs{input->t.contiguous()};
    wait(g, g->group->allgather(outputs, inputs), "all-gather");
  })
}

int bd_dist_barrier(bd_process_group g) {
  BD_STATUS({ wait(g, g->group->barrier(c10d::BarrierOptions()), "barrier"); })
}

} // extern "C"
