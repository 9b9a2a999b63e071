#!/usr/bin/env bash
# Launches moe-train on this machine under mpirun with sensible threads and binding:
#   launch/mpirun.sh -np 2 configs/quickstart.yaml [--set parallel.dp=2 ...]
# - OMP_NUM_THREADS = cores / ranks (at least 1), unless already set: ranks that together start
#   more OpenMP threads than there are cores slow down badly.
# - When every rank gets its own cores, each is bound to them (--map-by slot:PE=<threads>
#   --bind-to core); otherwise binding is off and --oversubscribe lets more ranks than cores start.
# - As root (containers), --allow-run-as-root.
# Environment: MOE_BUILD_DIR (default build), MPIRUN (default mpirun), MPIRUN_ARGS (extra flags).
# For several nodes use Slurm (srun) with your site's settings; the same thread rule applies per node.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 3 ] || [ "$1" != "-np" ]; then
  echo "usage: launch/mpirun.sh -np N CONFIG [moe-train options]" >&2
  exit 2
fi
ranks="$2"
config="$3"
shift 3
cores="$(nproc)"
threads="${OMP_NUM_THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}"
flags=(-np "$ranks" -x "OMP_NUM_THREADS=$threads")
if [ $(( ranks * threads )) -le "$cores" ]; then
  flags+=(--map-by "slot:PE=$threads" --bind-to core)
else
  flags+=(--oversubscribe --bind-to none)
fi
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
echo "== $ranks ranks x $threads threads on $cores cores"
exec "${MPIRUN:-mpirun}" "${flags[@]}" ${MPIRUN_ARGS:-} \
  "${MOE_BUILD_DIR:-$MOE_ROOT/build}/moe-train" --config "$config" "$@"
