// The emulator's stand-in for <cudnn.h>: only what cuda_check.h names (no kernel calls cuDNN).
#pragma once

enum cudnnStatus_t { CUDNN_STATUS_SUCCESS = 0 };

inline const char* cudnnGetErrorString(cudnnStatus_t) { return "cuDNN status (emulated)"; }
