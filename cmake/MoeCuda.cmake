# Optional CUDA backend (MOE_WITH_CUDA = AUTO|ON|OFF).
# Links the CUDA runtime, cuBLAS(Lt) and NCCL, never the driver library (libcuda): a binary that
# links it fails to start on a machine without a GPU driver. Architectures default to 90 (H100/H200)
# and 80 (A100). cuDNN is not used yet (attention is our own kernel), so it is neither required nor
# linked; it comes back with the cuDNN attention path.

set(MOE_CUDA_ENABLED OFF)
if(NOT MOE_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(MOE_CUDA_ENABLED ON)
  elseif(MOE_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MOE_WITH_CUDA=ON but no CUDA compiler (nvcc) was found; put it on PATH or "
                        "set CMAKE_CUDA_COMPILER")
  endif()
endif()

if(MOE_CUDA_ENABLED)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90 80)
  endif()
  enable_language(CUDA)
  # CMake 3.25 does not know nvcc 13's C++20 flag; the CUDA files, like the C++ ones, are C++20.
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  find_package(CUDAToolkit REQUIRED)
  get_filename_component(MOE_CUDA_ROOT "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  find_library(MOE_NCCL_LIBRARY nccl HINTS ${NCCL_HOME} $ENV{NCCL_HOME} ${MOE_CUDA_ROOT}
               PATH_SUFFIXES lib64 lib REQUIRED)
  find_path(MOE_NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_HOME} $ENV{NCCL_HOME} ${MOE_CUDA_ROOT}
            PATH_SUFFIXES include REQUIRED)
  add_library(moe_cuda_deps INTERFACE)
  target_link_libraries(moe_cuda_deps INTERFACE CUDA::cudart CUDA::cublas CUDA::cublasLt
                        ${MOE_NCCL_LIBRARY})
  target_include_directories(moe_cuda_deps INTERFACE ${MOE_NCCL_INCLUDE_DIR})
endif()
