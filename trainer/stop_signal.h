// Preemption: Slurm sends SIGTERM (or, with --signal=USR1@<seconds>, SIGUSR1) a while before it
// kills a job. The handlers only set a flag; the training loop asks stop_requested() at every step
// boundary and right after each periodic save, which all-reduces the flag so that every rank stops
// after the same step; a stop at a step boundary saves a checkpoint, a stop right after a save
// keeps that one; then the run exits cleanly.
#pragma once

#include "parallel/communicator.h"

namespace moe {

void install_stop_handlers();
// The signal this rank or any other rank of `world` received (0: none). Every rank calls it.
int stop_requested(Communicator* world);

}  // namespace moe
