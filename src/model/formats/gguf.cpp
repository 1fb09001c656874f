// gguf.cpp: GGUF header, metadata and tensor directory parsing (see gguf.hpp).
#include "model/formats/gguf.hpp"

#include <cstring>
#include <limits>

#include "core/errors.hpp"
#include "model/formats/dequant.hpp"

namespace infllm::model {
namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
// Limits that no real file reaches; beyond them a count is corruption, not a big model.
constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 32;
constexpr std::uint32_t kMaxDims = 4;                           // GGML_MAX_DIMS
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 56;  // per tensor

// A bounds-checked little-endian cursor over the mapped file. Every read names what it reads,
// so a truncated file reports "tensor 17 name: bytes [...) lie outside the file".
class Cursor {
 public:
  Cursor(const MappedFile& file, std::uint64_t pos) : file_(file), pos_(pos) {}
  std::uint64_t pos() const { return pos_; }

  std::uint64_t uint(int width, const std::string& what) {
    const auto b = file_.bytes(pos_, static_cast<std::uint64_t>(width), what);
    pos_ += static_cast<std::uint64_t>(width);
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(b[i]);
    return v;
  }
  std::uint32_t u32(const std::string& what) { return static_cast<std::uint32_t>(uint(4, what)); }
  std::uint64_t u64(const std::string& what) { return uint(8, what); }
  std::string string(const std::string& what) {
    const std::uint64_t len = u64(what + " length");
    const auto b = file_.bytes(pos_, len, what);
    pos_ += len;
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }

 private:
  const MappedFile& file_;
  std::uint64_t pos_;
};

std::int64_t signed_value(std::uint64_t raw, int width) {
  const int shift = 64 - 8 * width;
  return static_cast<std::int64_t>(raw << shift) >> shift;  // sign-extend
}

int int_width(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return 8;
    default:
      return 0;
  }
}

bool is_signed(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}

// Reads one scalar of type `t` into `v` (integers to v.i, floats to v.f, strings to v.s).
void read_scalar(Cursor& c, GgufValueType t, GgufValue& v, const std::string& path,
                 const std::string& what) {
  if (const int w = int_width(t)) {
    const std::uint64_t raw = c.uint(w, what);
    if (t == GgufValueType::kUint64 &&
        raw > std::uint64_t{std::numeric_limits<std::int64_t>::max()}) {
      throw InputError(path, what, "unsigned value " + std::to_string(raw) + " is too large");
    }
    v.i = is_signed(t) ? signed_value(raw, w) : static_cast<std::int64_t>(raw);
  } else if (t == GgufValueType::kFloat32) {
    const auto bits = c.u32(what);
    float f;
    std::memcpy(&f, &bits, 4);
    v.f = f;
  } else if (t == GgufValueType::kFloat64) {
    const auto bits = c.u64(what);
    double d;
    std::memcpy(&d, &bits, 8);
    v.f = d;
  } else if (t == GgufValueType::kString) {
    v.s = c.string(what);
  } else {
    throw InputError(path, what, "unknown value type " + std::to_string(static_cast<int>(t)));
  }
}

GgufValue read_value(Cursor& c, const std::string& path, const std::string& key) {
  GgufValue v;
  const std::uint32_t t = c.u32(key + " type");
  if (t > static_cast<std::uint32_t>(GgufValueType::kFloat64)) {
    throw InputError(path, key, "unknown value type " + std::to_string(t));
  }
  v.type = static_cast<GgufValueType>(t);
  if (v.type != GgufValueType::kArray) {
    read_scalar(c, v.type, v, path, key);
    return v;
  }
  const std::uint32_t et = c.u32(key + " element type");
  if (et > static_cast<std::uint32_t>(GgufValueType::kFloat64) ||
      et == static_cast<std::uint32_t>(GgufValueType::kArray)) {
    throw InputError(path, key, "array element type " + std::to_string(et) + " is not supported");
  }
  v.elem_type = static_cast<GgufValueType>(et);
  const std::uint64_t n = c.u64(key + " array length");
  if (n > kMaxCount)
    throw InputError(path, key, "array length " + std::to_string(n) + " is corrupt");
  GgufValue e;
  for (std::uint64_t k = 0; k < n; ++k) {
    read_scalar(c, v.elem_type, e, path, key);  // bounds-checked: a short file throws here
    if (v.elem_type == GgufValueType::kString) {
      v.strings.push_back(std::move(e.s));
    } else if (v.elem_type == GgufValueType::kFloat32 || v.elem_type == GgufValueType::kFloat64) {
      v.floats.push_back(e.f);
    } else {
      v.ints.push_back(e.i);
    }
  }
  return v;
}

const char* type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kString:
      return "a string";
    case GgufValueType::kArray:
      return "an array";
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return "a float";
    case GgufValueType::kBool:
      return "a bool";
    default:
      return "an integer";
  }
}

}  // namespace

bool GgufValue::is_integer() const { return int_width(type) != 0; }

std::int64_t GgufTensorInfo::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

GgufFile::GgufFile(const std::string& path) : file_(path) {
  Cursor c(file_, 0);
  if (file_.size() < 4 || c.u32("magic") != kMagic) {
    throw InputError(path, "header", "not a GGUF file (magic is not 'GGUF')");
  }
  version_ = c.u32("version");
  if (version_ != 2 && version_ != 3) {
    throw InputError(path, "header",
                     "GGUF version " + std::to_string(version_) + " is not supported (2 or 3)");
  }
  const std::uint64_t n_tensors = c.u64("tensor count");
  const std::uint64_t n_kv = c.u64("metadata count");
  if (n_tensors > kMaxCount || n_kv > kMaxCount) {
    throw InputError(path, "header", "tensor or metadata count is corrupt");
  }
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("metadata key " + std::to_string(k));
    GgufValue v = read_value(c, path, key);
    metadata_[key] = std::move(v);
  }
  if (const auto a = get_int_opt("general.alignment")) {
    if (*a <= 0 || (*a & (*a - 1)) != 0) {
      throw InputError(path, "general.alignment",
                       "must be a power of two, is " + std::to_string(*a));
    }
    alignment_ = static_cast<std::uint64_t>(*a);
  }
  std::vector<std::uint64_t> rel_offsets;
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    const std::string what = "tensor " + std::to_string(k);
    GgufTensorInfo t;
    t.name = c.string(what + " name");
    const std::uint32_t n_dims = c.u32(what + " dimension count");
    if (n_dims > kMaxDims) {
      throw InputError(path, "tensor " + t.name,
                       std::to_string(n_dims) + " dimensions (at most 4)");
    }
    std::vector<std::int64_t> ne(n_dims);
    std::uint64_t numel = 1;
    for (auto& d : ne) {
      const std::uint64_t v = c.u64(what + " dimensions");
      if (v > kMaxCount * 16 || (v != 0 && numel > kMaxElements / v)) {
        throw InputError(path, "tensor " + t.name, "dimensions are corrupt");
      }
      numel *= v;
      d = static_cast<std::int64_t>(v);
    }
    t.shape.assign(ne.rbegin(), ne.rend());
    t.type_id = c.u32(what + " type");
    rel_offsets.push_back(c.u64(what + " offset"));
    tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  const std::uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (std::size_t k = 0; k < tensors_.size(); ++k) {
    GgufTensorInfo& t = tensors_[k];
    const std::string where = "tensor " + t.name;
    if (rel_offsets[k] % alignment_ != 0) {
      throw InputError(path, where,
                       "data offset " + std::to_string(rel_offsets[k]) + " is not aligned to " +
                           std::to_string(alignment_));
    }
    if (rel_offsets[k] > file_.size()) {
      throw InputError(path, where,
                       "data offset " + std::to_string(rel_offsets[k]) +
                           " lies outside the file (truncated or corrupt)");
    }
    t.offset = data_start + rel_offsets[k];
    if (const auto info = ggml_type_info(t.type_id)) {
      const std::int64_t row = t.shape.empty() ? 1 : t.shape.back();
      if (row % info->block_elems != 0) {
        throw InputError(path, where,
                         "row length " + std::to_string(row) + " is not a multiple of the " +
                             info->name + " block size " + std::to_string(info->block_elems));
      }
      t.bytes = ggml_row_bytes(info->type, t.numel());
      file_.bytes(t.offset, t.bytes, where + " data");  // throws when outside the file
    }
    index_[t.name] = k;
  }
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

std::optional<std::int64_t> GgufFile::get_int_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_integer()) {
    throw InputError(path(), key, std::string("is ") + type_name(v->type) + ", not an integer");
  }
  return v->i;
}

std::int64_t GgufFile::get_int(const std::string& key) const {
  const auto v = get_int_opt(key);
  if (!v) throw InputError(path(), key, "missing (required)");
  return *v;
}

std::optional<double> GgufFile::get_float_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  throw InputError(path(), key, std::string("is ") + type_name(v->type) + ", not a number");
}

std::optional<std::string> GgufFile::get_string_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufValueType::kString) {
    throw InputError(path(), key, std::string("is ") + type_name(v->type) + ", not a string");
  }
  return v->s;
}

std::optional<bool> GgufFile::get_bool_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufValueType::kBool) {
    throw InputError(path(), key, std::string("is ") + type_name(v->type) + ", not a bool");
  }
  return v->i != 0;
}

std::vector<float> GgufFile::read_f32(const GgufTensorInfo& t) const {
  const auto info = ggml_type_info(t.type_id);
  if (!info) {
    throw InputError(path(), "tensor " + t.name,
                     "has tensor type " + ggml_type_name(t.type_id) + " (id " +
                         std::to_string(t.type_id) +
                         "), which infllm cannot dequantize (F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                         "Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
  }
  const auto bytes = file_.bytes(t.offset, t.bytes, "tensor " + t.name + " data");
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  dequantize(info->type, bytes, out);
  return out;
}

std::span<const std::byte> GgufFile::raw(const GgufTensorInfo& t) const {
  return file_.bytes(t.offset, t.bytes, "tensor " + t.name + " data");
}

}  // namespace infllm::model
