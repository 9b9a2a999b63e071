#include "checkpoint/h5.h"

#include <cerrno>
#include <cstring>

namespace moe::h5 {

namespace {

// HDF5's own messages for the error on the stack, innermost first, then errno's text when set.
std::string hdf5_error() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (e->desc && *e->desc && out->find(e->desc) == std::string::npos)
          *out += (out->empty() ? "" : "; ") + std::string(e->desc);
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  if (errno != 0) text += (text.empty() ? "" : "; ") + std::string(std::strerror(errno));
  return text.empty() ? "unknown HDF5 error" : text;
}

struct Quiet {  // turns HDF5's automatic stack printing off, once per process
  Quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

void quiet() { static Quiet once; }

template <class T>
T check(T status, const char* op, const std::string& what, bool write) {
  if (status >= 0) return status;
  const std::string message = std::string(op) + " " + what + " failed: " + hdf5_error();
  if (write) throw CheckpointError(message);
  throw InputError(message);
}

hid_t access_list(MPI_Comm comm) {
  quiet();
  const hid_t fapl = check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", "file access list", false);
  if (comm != MPI_COMM_NULL)
    check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "H5Pset_fapl_mpio", "file access list",
          false);
  return fapl;
}

hid_t native(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::f64:
      return H5T_NATIVE_DOUBLE;
    case DType::i32:
      return H5T_NATIVE_INT32;
    case DType::i64:
      return H5T_NATIVE_INT64;
    default:
      MOE_THROW(InputError, "checkpoints store f32, f64, i32 and i64 tensors, not ",
                dtype_name(dtype));
  }
}

std::vector<hsize_t> dims_of(const Shape& shape) {
  std::vector<hsize_t> dims(shape.ndim());
  for (int i = 0; i < shape.ndim(); ++i) dims[i] = static_cast<hsize_t>(shape[i]);
  return dims;
}

// The file space of `dataset` with the block [offset, offset + shape) selected.
Handle block_space(hid_t dataset, const std::string& name, const Shape& shape,
                   const std::vector<int64_t>& offset, bool write) {
  Handle space(check(H5Dget_space(dataset), "H5Dget_space", name, write), H5Sclose);
  if (shape.ndim() == 0) return space;
  std::vector<hsize_t> start(offset.begin(), offset.end()), count = dims_of(shape);
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        "selecting a block of", name, write);
  return space;
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    close_ = other.close_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = -1;
}

void Handle::close(const std::string& what) {
  const hid_t id = id_;
  id_ = -1;
  if (id >= 0) check(close_(id), "closing", what, true);
}

Handle create_file(const std::string& path, MPI_Comm comm) {
  Handle fapl(access_list(comm), H5Pclose);
  errno = 0;
  return Handle(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "creating",
                      "'" + path + "'", true),
                H5Fclose);
}

Handle open_file(const std::string& path, MPI_Comm comm, bool writable) {
  Handle fapl(access_list(comm), H5Pclose);
  errno = 0;
  return Handle(check(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get()),
                      "opening", "'" + path + "' (not an HDF5 file, or truncated?)", false),
                H5Fclose);
}

hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return H5T_IEEE_F32LE;
    case DType::f64:
      return H5T_IEEE_F64LE;
    case DType::i32:
      return H5T_STD_I32LE;
    case DType::i64:
      return H5T_STD_I64LE;
    default:
      return native(dtype);  // throws
  }
}

DType dtype_of_dataset(hid_t dataset, const std::string& name) {
  Handle type(check(H5Dget_type(dataset), "H5Dget_type", name, false), H5Tclose);
  for (DType d : {DType::f32, DType::f64, DType::i32, DType::i64})
    if (H5Tequal(type.get(), file_type(d)) > 0) return d;
  MOE_THROW(InputError, "dataset ", name, " has an element type checkpoints do not use");
}

Handle create_dataset(hid_t file, const std::string& name, DType dtype, const Shape& shape) {
  Handle links(check(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate", "link list", true), H5Pclose);
  check(H5Pset_create_intermediate_group(links.get(), 1), "H5Pset_create_intermediate_group", name,
        true);
  const std::vector<hsize_t> dims = dims_of(shape);
  Handle space(check(shape.ndim() == 0 ? H5Screate(H5S_SCALAR)
                                       : H5Screate_simple(shape.ndim(), dims.data(), nullptr),
                     "H5Screate", name, true),
               H5Sclose);
  errno = 0;
  return Handle(check(H5Dcreate2(file, name.c_str(), file_type(dtype), space.get(), links.get(),
                                 H5P_DEFAULT, H5P_DEFAULT),
                      "creating dataset", name, true),
                H5Dclose);
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& path) {
  MOE_CHECK(exists(file, name), "checkpoint ", path, " has no tensor '", name, "'");
  return Handle(check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "opening dataset", name, false),
                H5Dclose);
}

bool exists(hid_t file, const std::string& name) {
  // Each level of the path must exist before the next can be asked about.
  for (size_t slash = name.find('/');; slash = name.find('/', slash + 1)) {
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
  }
}

Shape dataset_shape(hid_t dataset, const std::string& name) {
  Handle space(check(H5Dget_space(dataset), "H5Dget_space", name, false), H5Sclose);
  const int rank =
      check(H5Sget_simple_extent_ndims(space.get()), "reading the rank of", name, false);
  MOE_CHECK(rank <= Shape::kMaxDims, "dataset ", name, " has ", rank, " dims");
  hsize_t dims[Shape::kMaxDims] = {};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return Shape(std::vector<int64_t>(dims, dims + rank));
}

std::vector<std::string> dataset_names(hid_t file) {
  std::vector<std::string> names;
  check(H5Ovisit2(
            file, H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
              if (info->type == H5O_TYPE_DATASET)
                static_cast<std::vector<std::string>*>(data)->push_back(name);
              return 0;
            },
            &names, H5O_INFO_BASIC),
        "listing", "datasets", false);
  return names;
}

void write_block(hid_t dataset, const std::string& name, const Tensor& data,
                 const std::vector<int64_t>& offset) {
  if (!data.defined()) return;
  Handle space = block_space(dataset, name, data.shape(), offset, true);
  const std::vector<hsize_t> dims = dims_of(data.shape());
  Handle memory(check(data.ndim() == 0 ? H5Screate(H5S_SCALAR)
                                       : H5Screate_simple(data.ndim(), dims.data(), nullptr),
                      "H5Screate", name, true),
                H5Sclose);
  errno = 0;
  check(H5Dwrite(dataset, native(data.dtype()), memory.get(), space.get(), H5P_DEFAULT, data.raw()),
        "writing", name, true);
}

void read_block(hid_t dataset, const std::string& name, Tensor& data,
                const std::vector<int64_t>& offset) {
  Handle space = block_space(dataset, name, data.shape(), offset, false);
  const std::vector<hsize_t> dims = dims_of(data.shape());
  Handle memory(check(data.ndim() == 0 ? H5Screate(H5S_SCALAR)
                                       : H5Screate_simple(data.ndim(), dims.data(), nullptr),
                      "H5Screate", name, false),
                H5Sclose);
  errno = 0;
  check(H5Dread(dataset, native(data.dtype()), memory.get(), space.get(), H5P_DEFAULT, data.raw()),
        "reading", name + " (a truncated or damaged file?)", false);
}

namespace {

void write_scalar_attribute(hid_t object, const std::string& name, hid_t file_type_id,
                            hid_t memory_type, const void* value) {
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate", name, true), H5Sclose);
  Handle attribute(
      check(H5Acreate2(object, name.c_str(), file_type_id, space.get(), H5P_DEFAULT, H5P_DEFAULT),
            "creating attribute", name, true),
      H5Aclose);
  check(H5Awrite(attribute.get(), memory_type, value), "writing attribute", name, true);
}

Handle open_attribute(hid_t object, const std::string& name, const std::string& path) {
  MOE_CHECK(has_attribute(object, name), "checkpoint ", path, " has no attribute '", name, "'");
  return Handle(check(H5Aopen(object, name.c_str(), H5P_DEFAULT), "opening attribute", name, false),
                H5Aclose);
}

}  // namespace

void write_attribute(hid_t object, const std::string& name, int64_t value) {
  write_scalar_attribute(object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void write_attribute(hid_t object, const std::string& name, uint64_t value) {
  write_scalar_attribute(object, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void write_attribute(hid_t object, const std::string& name, const std::string& value) {
  Handle type(check(H5Tcopy(H5T_C_S1), "H5Tcopy", name, true), H5Tclose);
  check(H5Tset_size(type.get(), value.empty() ? 1 : value.size()), "H5Tset_size", name, true);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", name, true);
  write_scalar_attribute(object, name, type.get(), type.get(), value.empty() ? "" : value.data());
}

int64_t read_int_attribute(hid_t object, const std::string& name, const std::string& path) {
  Handle attribute = open_attribute(object, name, path);
  int64_t value = 0;
  check(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), "reading attribute", name, false);
  return value;
}

uint64_t read_uint_attribute(hid_t object, const std::string& name, const std::string& path) {
  Handle attribute = open_attribute(object, name, path);
  uint64_t value = 0;
  check(H5Aread(attribute.get(), H5T_NATIVE_UINT64, &value), "reading attribute", name, false);
  return value;
}

std::string read_string_attribute(hid_t object, const std::string& name, const std::string& path) {
  Handle attribute = open_attribute(object, name, path);
  Handle type(check(H5Aget_type(attribute.get()), "H5Aget_type", name, false), H5Tclose);
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  check(H5Aread(attribute.get(), type.get(), value.data()), "reading attribute", name, false);
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

bool has_attribute(hid_t object, const std::string& name) {
  return H5Aexists(object, name.c_str()) > 0;
}

}  // namespace moe::h5
