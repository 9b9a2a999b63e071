# Finds every host dependency with CMake's own modules or the packages' config files.
# Parallel HDF5 is required: checkpoints are written by all ranks into shared files.

find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(OpenMP REQUIRED COMPONENTS CXX)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(MOE_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu REQUIRED)
add_library(moe_blas INTERFACE)
target_link_libraries(moe_blas INTERFACE BLAS::BLAS)
target_include_directories(moe_blas INTERFACE ${MOE_CBLAS_INCLUDE_DIR})

set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "MoEForge needs a parallel (MPI) build of HDF5, but the HDF5 found at '${HDF5_C_INCLUDE_DIRS}' is "
    "serial (HDF5_IS_PARALLEL is false). On Debian/Ubuntu: apt-get install libhdf5-openmpi-dev, and "
    "remove libhdf5-dev if CMake keeps finding it first.")
endif()

find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
if(MOE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(MOE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
