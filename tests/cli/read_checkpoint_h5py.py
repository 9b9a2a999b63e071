"""Reads a MoEForge checkpoint with h5py and numpy alone (the example of docs/checkpoints.md).

    python3 read_checkpoint_h5py.py ckpt/step_00001000
"""
import sys

import h5py
import numpy as np

step_dir = sys.argv[1]
with h5py.File(f"{step_dir}/state.h5", "r") as f:
    print("step", int(f.attrs["step"]), "consumed tokens", int(f.attrs["consumed_tokens"]))
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in names:
        print(name, f[name].shape, f[name].dtype)
    print(len(names), "tensors")
    weight = np.asarray(f["model/final_norm.weight"])
    print("model/final_norm.weight shape", weight.shape, "mean", float(weight.mean()))
