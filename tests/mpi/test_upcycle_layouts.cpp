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
#include "config/yaml_io.h"
#include "layers/model.h"
#include "parallel/process_grid.h"
#include "tests/support/tolerance.h"
#include "tests/support/upcycle_models.h"
#include "upcycling/upcycle.h"

namespace moe {
namespace {

struct Layout {
  int tp, dp, ep;
};

TEST(UpcycledLayouts, CopyComputesTheDenseFunctionInEveryLayout) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const std::string root = ::testing::TempDir() + "moe_upcycle_layouts";
  const Config dense = testing::small_dense_config(20, 2),
               moe = testing::upcycled_moe_config(dense, 4, 2);
  ParameterStore dense_store(DType::f32);
  Model dense_model(dense.model, dense.moe, dense_store);
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
  const Tensor expected = testing::fixed_token_logits(dense_model);
  const int n = world->size();
  std::vector<Layout> layouts = {{1, n, 1}, {1, n, n}};
  if (n % 2 == 0) layouts.push_back({2, n / 2, 1});
  if (n % 4 == 0) layouts.push_back({2, n / 2, 2});
  for (const Layout& l : layouts) {
    SCOPED_TRACE("tp " + std::to_string(l.tp) + " dp " + std::to_string(l.dp) + " ep " +
                 std::to_string(l.ep));
    ProcessGrid grid(*world, l.tp, l.dp, l.ep);
    ParameterStore store(DType::f32);
    Model model(moe.model, moe.moe, store, grid.groups(false));
    store.allocate(0);
    load_checkpoint(root + "/moe/" + step_dir_name(0), {&store, false, {}}, grid.groups(false));
    EXPECT_TRUE(testing::all_close(testing::fixed_token_logits(model), expected, 1e-6, 1e-5));
  }
  world->barrier();
}

}  // namespace
}  // namespace moe
