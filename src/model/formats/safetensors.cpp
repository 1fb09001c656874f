// safetensors.cpp: the safetensors reader and streaming writer (see safetensors.hpp).
#include "model/formats/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/half.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

// A header larger than this is not a model header but a corrupt length.
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;

std::uint64_t read_u64_le(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Bytes per element of any safetensors dtype, 0 when unknown.
std::uint64_t any_dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

}  // namespace

const char* st_dtype_name(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF32:
      return "F32";
    case StDtype::kF16:
      return "F16";
    case StDtype::kBF16:
      return "BF16";
  }
  return "?";
}

std::int64_t st_dtype_bytes(StDtype dtype) { return dtype == StDtype::kF32 ? 4 : 2; }

std::optional<StDtype> parse_st_dtype(const std::string& name) {
  if (name == "f32" || name == "F32") return StDtype::kF32;
  if (name == "f16" || name == "F16") return StDtype::kF16;
  if (name == "bf16" || name == "BF16") return StDtype::kBF16;
  return std::nullopt;
}

std::int64_t SafetensorsTensor::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const auto len_bytes = file_.bytes(0, 8, "header length");
  const std::uint64_t header_len = read_u64_le(len_bytes.data());
  if (header_len > kMaxHeaderBytes) {
    throw InputError(path, "header",
                     "length " + std::to_string(header_len) +
                         " is implausible (corrupt file or not safetensors)");
  }
  const auto header = file_.bytes(8, header_len, "header");
  json j;
  try {
    j = json::parse(reinterpret_cast<const char*>(header.data()),
                    reinterpret_cast<const char*>(header.data()) + header.size());
  } catch (const json::exception& e) {
    throw InputError(path, "header", std::string("is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw InputError(path, "header", "is not a JSON object");
  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = file_.size() - data_start;
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (info.is_object()) {
        for (const auto& [k, v] : info.items()) {
          if (v.is_string()) metadata_[k] = v.get<std::string>();
        }
      }
      continue;
    }
    const std::string where = "tensor " + name;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets") || !info["dtype"].is_string() || !info["shape"].is_array() ||
        !info["data_offsets"].is_array() || info["data_offsets"].size() != 2) {
      throw InputError(path, where, "header entry lacks dtype, shape or data_offsets");
    }
    SafetensorsTensor t;
    t.name = name;
    t.dtype = info["dtype"].get<std::string>();
    std::uint64_t numel = 1;
    for (const auto& d : info["shape"]) {
      if (!d.is_number_unsigned()) throw InputError(path, where, "shape is not a list of sizes");
      const auto v = d.get<std::uint64_t>();
      if (v != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 8 / v) {
        throw InputError(path, where, "shape overflows");
      }
      numel *= v;
      t.shape.push_back(static_cast<std::int64_t>(v));
    }
    const auto& offs = info["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
      throw InputError(path, where, "data_offsets are not non-negative integers");
    }
    const auto begin = offs[0].get<std::uint64_t>(), end = offs[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      throw InputError(path, where,
                       "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                           ") lie outside the " + std::to_string(data_size) +
                           " data bytes of the file (truncated or corrupt)");
    }
    const std::uint64_t elem = any_dtype_bytes(t.dtype);
    if (elem != 0 && numel * elem != end - begin) {
      throw InputError(path, where,
                       std::to_string(end - begin) + " bytes do not hold a " + t.dtype + " " +
                           shape_string(t.shape) + " tensor (" + std::to_string(numel * elem) +
                           " bytes)");
    }
    t.begin = data_start + begin;
    t.end = data_start + end;
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // Header order is JSON object order (nlohmann sorts keys); present tensors by file offset.
  std::sort(tensors_.begin(), tensors_.end(),
            [](const auto& a, const auto& b) { return a.begin < b.begin; });
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<float> SafetensorsFile::read_f32(const SafetensorsTensor& t) const {
  const auto dtype = parse_st_dtype(t.dtype);
  if (!dtype) {
    throw InputError(path(), "tensor " + t.name,
                     "has dtype " + t.dtype + "; infllm reads F32, F16 and BF16 weights");
  }
  const auto bytes = file_.bytes(t.begin, t.end - t.begin, "tensor " + t.name);
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  switch (*dtype) {
    case StDtype::kF32:
      std::memcpy(out.data(), p, bytes.size());
      break;
    case StDtype::kF16:
      for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = to_f32(f16{static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8))});
      }
      break;
    case StDtype::kBF16:
      for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = to_f32(bf16{static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8))});
      }
      break;
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  // Header first: offsets follow from the shapes alone.
  json header = json::object();
  header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& e : entries) {
    std::int64_t numel = 1;
    for (const auto d : e.shape) numel *= d;
    const std::uint64_t bytes = static_cast<std::uint64_t>(numel) * st_dtype_bytes(e.dtype);
    header[e.name] = {{"dtype", st_dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // align the data section to 8 bytes

  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path, "", "cannot create");
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(text.size() >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));

  constexpr std::int64_t kChunk = 1 << 16;  // elements converted at a time
  std::vector<float> values(kChunk);
  std::vector<std::uint8_t> bytes(kChunk * 4);
  for (const auto& e : entries) {
    std::int64_t numel = 1;
    for (const auto d : e.shape) numel *= d;
    for (std::int64_t first = 0; first < numel; first += kChunk) {
      const std::int64_t n = std::min(kChunk, numel - first);
      const std::span<float> chunk(values.data(), static_cast<std::size_t>(n));
      e.fill(first, chunk);
      std::size_t nbytes = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint32_t bits = 0;
        int width = 4;
        switch (e.dtype) {
          case StDtype::kF32:
            bits = f32_bits(chunk[i]);
            break;
          case StDtype::kF16:
            bits = to_f16(chunk[i]).bits;
            width = 2;
            break;
          case StDtype::kBF16:
            bits = to_bf16(chunk[i]).bits;
            width = 2;
            break;
        }
        for (int b = 0; b < width; ++b)
          bytes[nbytes++] = static_cast<std::uint8_t>(bits >> (8 * b));
      }
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(nbytes));
    }
  }
  out.close();
  if (!out) throw InputError(path, "", "write failed (disk full?)");
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw InputError(path, "", "cannot rename from " + tmp + ": " + ec.message());
}

}  // namespace infllm::model
