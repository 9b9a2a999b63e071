// The places a run writes to (checkpoint.dir, log.metrics_file), checked before its first step, so
// that a bad one ends the run at once rather than at its first save, after hours of training.
//
// Decisions:
// - Checked by a real write, not by permission bits: the directory is created when missing and a
//   probe file is created and removed in it (root ignores permissions, read-only mounts and full
//   quotas do not show in them). An existing metrics file is opened for appending, which leaves
//   it as it was; a missing one is created and removed.
// - World rank 0 checks, as it is the one that writes the metrics file and publishes checkpoints;
//   every rank gets its verdict and stops with the same one-line error naming the key and path.
#pragma once

#include "config/run_config.h"
#include "parallel/communicator.h"

namespace moe {

// An InputError on every rank of `world` when a path the config writes to cannot be written.
// Collective.
void check_output_paths(const Config& config, Communicator* world);

}  // namespace moe
