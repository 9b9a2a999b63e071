// A copy-upcycled checkpoint computes the dense function in any parallel layout: rank 0 writes a
// dense checkpoint and its copy-upcycled MoE; every layout of the job (data, expert and tensor
// parallel) loads the MoE and its logits for the same tokens equal the dense model's on one rank
// (fp32: relative 1e-5, the k equal expert outputs summed in another order).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "layers/model.h"
#include "parallel/process_grid.h"
#include "tests/support/tolerance.h"
#include "upcycling/upcycle.h"

namespace moe {
namespace {

Config dense_config() {
  Config c;
  c.model.vocab_size = 20;
  c.model.d_model = 16;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 2;
  c.model.ffn_hidden = 24;
  c.model.max_seq_len = 8;
  c.model.init_std = 0.3;
  c.model.tie_embeddings = false;
  c.moe.first_k_dense = c.model.n_layers;
  c.moe.num_experts = 1;
  c.moe.top_k = 1;
  c.data.seq_len = 8;
  return c;
}

Config moe_config() {
  Config c = dense_config();
  c.moe.first_k_dense = 0;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = c.model.ffn_hidden;
  return c;
}

Tensor logits(Model& model) {
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
  Stream stream;
  const Tensor inputs = Tensor::from_vector<int32_t>({2, 8}, ids);
  const Tensor targets =
      Tensor::from_vector<int32_t>({2, 8}, std::vector<int32_t>(ids.size(), Model::ignore_index));
  const ModelOutput out = model.forward(inputs, targets, false, stream);
  return model.full_logits(out.logits, stream);
}

struct Layout {
  int tp, dp, ep;
};

TEST(UpcycledLayouts, CopyComputesTheDenseFunctionInEveryLayout) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const std::string root = ::testing::TempDir() + "moe_upcycle_layouts";
  const Config dense = dense_config(), moe = moe_config();
  ParameterStore dense_store(DType::f32);
  Model dense_model(dense, dense_store);
  dense_store.allocate(5);
  if (world->rank() == 0) {
    std::filesystem::remove_all(root);
    CheckpointMeta meta;
    meta.config_yaml = to_yaml(dense);
    const std::string dense_dir =
        save_checkpoint(root + "/dense", {&dense_store, false, {}}, meta, {});
    upcycle({dense_dir}, moe, {}, root + "/moe");
  }
  world->barrier();
  const Tensor expected = logits(dense_model);
  const int n = world->size();
  std::vector<Layout> layouts = {{1, n, 1}, {1, n, n}};
  if (n % 2 == 0) layouts.push_back({2, n / 2, 1});
  if (n % 4 == 0) layouts.push_back({2, n / 2, 2});
  for (const Layout& l : layouts) {
    SCOPED_TRACE("tp " + std::to_string(l.tp) + " dp " + std::to_string(l.dp) + " ep " +
                 std::to_string(l.ep));
    ProcessGrid grid(*world, l.tp, l.dp, l.ep);
    ParameterStore store(DType::f32);
    Model model(moe, store, grid.groups(false));
    store.allocate(0);
    load_checkpoint(root + "/moe/" + step_dir_name(0), {&store, false, {}}, grid.groups(false));
    EXPECT_TRUE(testing::all_close(logits(model), expected, 1e-6, 1e-5));
  }
  world->barrier();
}

}  // namespace
}  // namespace moe
