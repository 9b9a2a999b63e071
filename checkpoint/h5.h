// Thin RAII over the HDF5 C API for the checkpoint code: handles that close themselves, every call
// checked, and errors that name the file and the operation instead of HDF5's printed stack.
//
// Decisions:
// - The automatic HDF5 error printing is turned off; a failed call throws InputError (for a file
//   the user gave us: missing, truncated, not HDF5) or CheckpointError (a write that failed: disk
//   full, permissions), with the HDF5 error message and, for I/O, the errno text.
// - Files opened with an MPI communicator use MPI-IO (parallel HDF5); metadata operations (create a
//   dataset, write an attribute) are then collective and every rank must make them in the same
//   order; data writes and reads of hyperslabs are independent.
#pragma once

#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace moe {

class CheckpointError : public Error {  // saving or loading state failed
 public:
  using Error::Error;
};

namespace h5 {

// An HDF5 identifier closed with `close` when it goes out of scope.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  // Closes now and reports a failure (a failed close can mean unwritten data).
  void close(const std::string& what);
  void reset();

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// comm: MPI_COMM_NULL for serial access (tools reading one file), else parallel over comm.
Handle create_file(const std::string& path, MPI_Comm comm);
Handle open_file(const std::string& path, MPI_Comm comm, bool writable = false);

hid_t file_type(DType dtype);  // f32, f64, i64, i32 in little-endian file types
DType dtype_of_dataset(hid_t dataset, const std::string& name);

// Creates a dataset of `shape` (groups in the name are created too).
Handle create_dataset(hid_t file, const std::string& name, DType dtype, const Shape& shape);
Handle open_dataset(hid_t file, const std::string& name, const std::string& path);
bool exists(hid_t file, const std::string& name);
Shape dataset_shape(hid_t dataset, const std::string& name);
std::vector<std::string> dataset_names(hid_t file);  // every dataset, full paths without "/"

// Writes (reads) the block `data` of the dataset that starts at `offset`; data is contiguous host
// memory shaped like the block. An undefined `data` takes part without transferring anything.
void write_block(hid_t dataset, const std::string& name, const Tensor& data,
                 const std::vector<int64_t>& offset);
void read_block(hid_t dataset, const std::string& name, Tensor& data,
                const std::vector<int64_t>& offset);

// Scalar attributes on an object (the file's root group is "/").
void write_attribute(hid_t object, const std::string& name, int64_t value);
void write_attribute(hid_t object, const std::string& name, uint64_t value);
void write_attribute(hid_t object, const std::string& name, const std::string& value);
int64_t read_int_attribute(hid_t object, const std::string& name, const std::string& path);
uint64_t read_uint_attribute(hid_t object, const std::string& name, const std::string& path);
std::string read_string_attribute(hid_t object, const std::string& name, const std::string& path);
bool has_attribute(hid_t object, const std::string& name);

}  // namespace h5
}  // namespace moe
