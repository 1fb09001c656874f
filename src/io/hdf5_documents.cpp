// hdf5_documents.cpp: see hdf5_documents.hpp. Strings may be variable-length or fixed-length;
// token sequences are variable-length integer sequences of any integer width.
#include "io/hdf5_documents.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "core/errors.hpp"
#include "io/hdf5_file.hpp"
#include "io/hdf5_isolated.hpp"
#include "io/hdf5_vlen.hpp"

namespace infllm::io {

namespace {

struct Dataset {
  Hdf5Handle set;
  Hdf5Handle type;
  hsize_t size = 0;
};

// What every read is bounded by: the file's size and the record limit.
struct Bounds {
  hid_t file = H5I_INVALID_HID;
  VlenLimits limits;
};

// Fixed-length strings are read this many bytes at a time, so that a dataset whose declared
// extent is far larger than its compressed storage holds cannot allocate it at once.
constexpr std::size_t kSlabBytes = std::size_t{16} << 20;

// Opens /documents/<name> as a 1-D dataset, or returns an invalid handle when absent.
Dataset open_1d(const std::string& path, hid_t file, const std::string& name, bool required,
                const Bounds& bounds) {
  const std::string full = "/documents/" + name;
  Dataset d;
  if (H5Lexists(file, "/documents", H5P_DEFAULT) <= 0) {
    throw InputError(path, "/documents",
                     "missing group (expected /documents/id and text or tokens)");
  }
  if (H5Lexists(file, full.c_str(), H5P_DEFAULT) <= 0) {
    if (required) throw InputError(path, full, "missing dataset");
    return d;
  }
  d.set = Hdf5Handle(H5Dopen2(file, full.c_str(), H5P_DEFAULT));
  if (!d.set.valid()) throw InputError(path, full, "not a dataset");
  Hdf5Handle space(H5Dget_space(d.set.get()));
  if (H5Sget_simple_extent_ndims(space.get()) != 1) {
    throw InputError(path, full, "must be one-dimensional");
  }
  H5Sget_simple_extent_dims(space.get(), &d.size, nullptr);
  // Every document takes at least one byte of the file, so a larger extent is corrupt (and
  // would otherwise size the vectors below).
  if (d.size > static_cast<hsize_t>(bounds.limits.file_bytes)) {
    throw InputError(path, full,
                     "declares " + std::to_string(d.size) + " entries, more than a file of " +
                         std::to_string(bounds.limits.file_bytes) + " bytes can hold");
  }
  d.type = Hdf5Handle(H5Dget_type(d.set.get()));
  return d;
}

std::vector<std::string> read_strings(const std::string& path, const std::string& name,
                                      const Dataset& d, const Bounds& bounds) {
  const std::string full = "/documents/" + name;
  if (H5Tget_class(d.type.get()) != H5T_STRING) {
    throw InputError(path, full, "must hold strings");
  }
  std::vector<std::string> out(d.size);
  if (H5Tis_variable_str(d.type.get()) > 0) {
    Hdf5Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(d.type.get()));
    // libhdf5 sizes its buffers by the characters' size in the file's type, so a corrupt one
    // would be followed as far as any corrupt length.
    Hdf5Handle character(H5Tget_super(d.type.get()));
    if (!character.valid() || H5Tget_size(character.get()) != 1) {
      throw InputError(path, full,
                       "variable-length strings whose characters are not one byte (a corrupt "
                       "file)");
    }
    check_vlen_entries(path, full, bounds.file, d.set.get(), 1, bounds.limits);
    std::vector<char*> raw(d.size, nullptr);
    if (H5Dread(d.set.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) {
      // A read that fails part-way keeps the strings it allocated: free them (null ones are
      // skipped).
      Hdf5Handle space(H5Dget_space(d.set.get()));
      H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
      throw InputError(path, full, "cannot read strings");
    }
    for (hsize_t i = 0; i < d.size; ++i) out[i] = raw[i] ? raw[i] : "";
    Hdf5Handle space(H5Dget_space(d.set.get()));
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  } else {
    const std::size_t width = H5Tget_size(d.type.get());
    if (width == 0 || width > static_cast<std::size_t>(bounds.limits.max_record_bytes)) {
      throw InputError(path, full,
                       "fixed-length strings of " + std::to_string(width) +
                           " bytes (at most --max-record-mb, " +
                           std::to_string(bounds.limits.max_record_bytes >> 20) + " MiB)");
    }
    Hdf5Handle file_space(H5Dget_space(d.set.get()));
    const hsize_t slab = std::max<hsize_t>(1, kSlabBytes / width);
    std::vector<char> raw(width * static_cast<std::size_t>(std::min(slab, d.size)));
    for (hsize_t first = 0; first < d.size; first += slab) {
      const hsize_t count = std::min(slab, d.size - first);
      Hdf5Handle mem_space(H5Screate_simple(1, &count, nullptr));
      if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &first, nullptr, &count, nullptr) <
              0 ||
          H5Dread(d.set.get(), d.type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                  raw.data()) < 0) {
        throw InputError(path, full, "cannot read strings");
      }
      for (hsize_t k = 0; k < count; ++k) {
        const hsize_t i = first + k;
        const char* s = raw.data() + k * width;
        out[i].assign(s, strnlen(s, width));
        // A NUL inside the string (not only padding after it) would be silently cut here.
        for (std::size_t b = out[i].size(); b < width; ++b) {
          if (s[b] != '\0') {
            throw InputError(path, full + ", index " + std::to_string(i),
                             "holds a NUL byte inside the string (at byte " +
                                 std::to_string(out[i].size()) + "); it cannot be read whole");
          }
        }
      }
    }
  }
  return out;
}

std::vector<std::vector<std::int64_t>> read_token_lists(const std::string& path, const Dataset& d,
                                                        const Bounds& bounds) {
  const std::string full = "/documents/tokens";
  if (H5Tget_class(d.type.get()) != H5T_VLEN) {
    throw InputError(path, full, "must be variable-length integer sequences");
  }
  Hdf5Handle base(H5Tget_super(d.type.get()));
  if (H5Tget_class(base.get()) != H5T_INTEGER) {
    throw InputError(path, full, "sequence elements must be integers");
  }
  const std::size_t element_bytes = H5Tget_size(base.get());
  if (element_bytes == 0 || element_bytes > 8) {
    throw InputError(path, full,
                     "sequence elements of " + std::to_string(element_bytes) +
                         " bytes (integers of 1 to 8 bytes are read)");
  }
  check_vlen_entries(path, full, bounds.file, d.set.get(), element_bytes, bounds.limits);
  Hdf5Handle mem(H5Tvlen_create(H5T_NATIVE_INT64));
  std::vector<hvl_t> raw(d.size);  // {0, nullptr} each
  if (H5Dread(d.set.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) {
    // A read that fails part-way keeps the sequences it allocated: free them.
    Hdf5Handle space(H5Dget_space(d.set.get()));
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
    throw InputError(path, full, "cannot read token sequences");
  }
  std::vector<std::vector<std::int64_t>> out(d.size);
  for (hsize_t i = 0; i < d.size; ++i) {
    const auto* p = static_cast<const std::int64_t*>(raw[i].p);
    out[i].assign(p, p + raw[i].len);
  }
  Hdf5Handle space(H5Dget_space(d.set.get()));
  H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  return out;
}

std::vector<std::int64_t> read_integers(const std::string& path, const std::string& name,
                                        const Dataset& d) {
  const std::string full = "/documents/" + name;
  if (H5Tget_class(d.type.get()) != H5T_INTEGER) throw InputError(path, full, "must hold integers");
  std::vector<std::int64_t> out(d.size);
  if (H5Dread(d.set.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    throw InputError(path, full, "cannot read integers");
  }
  return out;
}

// Every member of /documents must be one this reader knows: a dataset it does not read (a
// misspelt max_new_token, a temperature column) would otherwise be ignored silently.
void refuse_unknown_members(const std::string& path, hid_t file) {
  if (H5Lexists(file, "/documents", H5P_DEFAULT) <= 0) return;  // open_1d names it
  H5G_info_t info{};
  if (H5Gget_info_by_name(file, "/documents", &info, H5P_DEFAULT) < 0) return;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(file, "/documents", H5_INDEX_NAME, H5_ITER_INC, i,
                                           nullptr, 0, H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(file, "/documents", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    if (name != "id" && name != "text" && name != "tokens" && name != "max_new_tokens") {
      throw InputError(path, "/documents/" + name,
                       "is not an input dataset infllm reads (id, text or tokens, "
                       "max_new_tokens)");
    }
  }
}

}  // namespace

std::vector<Document> read_hdf5_documents_in_process(const std::string& path,
                                                     const ReadOptions& options) {
  Hdf5Handle file = open_hdf5_read(path);
  Bounds bounds;
  bounds.file = file.get();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw InputError(path, "", "cannot stat the file");
  bounds.limits.file_bytes = static_cast<std::int64_t>(st.st_size);
  bounds.limits.max_record_bytes = options.max_record_bytes;
  refuse_unknown_members(path, file.get());
  const Dataset ids = open_1d(path, file.get(), "id", true, bounds);
  const Dataset text = open_1d(path, file.get(), "text", false, bounds);
  const Dataset tokens = open_1d(path, file.get(), "tokens", false, bounds);
  const Dataset max_new = open_1d(path, file.get(), "max_new_tokens", false, bounds);
  if (text.set.valid() == tokens.set.valid()) {
    throw InputError(path, "/documents", "needs exactly one of the datasets text and tokens");
  }
  const std::vector<std::string> id_values = read_strings(path, "id", ids, bounds);
  const hsize_t n = ids.size;
  for (const Dataset* d : {&text, &tokens, &max_new}) {
    if (d->set.valid() && d->size != n) {
      throw InputError(path, "/documents",
                       "datasets differ in length (id has " + std::to_string(n) + " entries)");
    }
  }
  std::vector<std::string> texts;
  std::vector<std::vector<std::int64_t>> token_lists;
  std::vector<std::int64_t> max_values;
  if (text.set.valid()) texts = read_strings(path, "text", text, bounds);
  if (tokens.set.valid()) token_lists = read_token_lists(path, tokens, bounds);
  if (max_new.set.valid()) max_values = read_integers(path, "max_new_tokens", max_new);

  std::vector<Document> docs(n);
  for (hsize_t i = 0; i < n; ++i) {
    Document& doc = docs[i];
    doc.id = id_values[i];
    doc.where = "index " + std::to_string(i) + " (id " + doc.id + ")";
    if (doc.id.empty())
      throw InputError(path, "/documents/id, index " + std::to_string(i), "empty id");
    if (text.set.valid()) {
      if (texts[i].empty()) throw InputError(path, "/documents/text, " + doc.where, "empty prompt");
      doc.prompt = texts[i];
    } else {
      if (token_lists[i].empty()) {
        throw InputError(path, "/documents/tokens, " + doc.where, "empty prompt");
      }
      std::vector<std::int32_t> ids32;
      const std::int64_t hi = options.vocab_size > 0 ? options.vocab_size - 1 : INT32_MAX;
      for (std::int64_t t : token_lists[i]) {
        if (t < 0 || t > hi) {
          throw InputError(path, "/documents/tokens, " + doc.where,
                           "token id " + std::to_string(t) + " outside the vocabulary [0, " +
                               std::to_string(hi) + "]");
        }
        ids32.push_back(static_cast<std::int32_t>(t));
      }
      doc.tokens = std::move(ids32);
    }
    if (max_new.set.valid()) {
      if (max_values[i] < 0 || max_values[i] > (1 << 24)) {
        throw InputError(path, "/documents/max_new_tokens, " + doc.where, "out of range");
      }
      doc.max_new_tokens = static_cast<int>(max_values[i]);
    }
  }
  return docs;
}

// --- the read in a child process (io/hdf5_isolated.hpp) ---------------------------------------
//
// The child's documents travel as records: the id, where, a flag byte (1 prompt, 2 tokens,
// 4 max_new_tokens) and those fields, integers as 8 little-endian bytes and strings as a length
// and the bytes. The HDF5 layout sets no other field of a Document.

namespace {

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_string(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

std::string encode_documents(const std::vector<Document>& docs) {
  std::string out;
  for (const Document& d : docs) {
    put_string(out, d.id);
    put_string(out, d.where);
    out.push_back(
        static_cast<char>((d.prompt ? 1 : 0) | (d.tokens ? 2 : 0) | (d.max_new_tokens ? 4 : 0)));
    if (d.prompt) put_string(out, *d.prompt);
    if (d.tokens) {
      put_u64(out, d.tokens->size());
      for (std::int32_t t : *d.tokens) put_u64(out, static_cast<std::uint32_t>(t));
    }
    if (d.max_new_tokens) put_u64(out, static_cast<std::uint64_t>(*d.max_new_tokens));
  }
  return out;
}

class Decoder {
 public:
  Decoder(const std::string& path, const std::string& bytes) : path_(path), bytes_(bytes) {}

  bool at_end() const { return pos_ == bytes_.size(); }
  unsigned char byte() {
    need(1);
    return static_cast<unsigned char>(bytes_[pos_++]);
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes_[pos_ + i]);
    pos_ += 8;
    return v;
  }
  std::string string() {
    const std::uint64_t n = u64();
    need(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void need(std::uint64_t n) const {
    if (n > bytes_.size() - pos_) {
      throw InternalError("reading " + path_ + ": the HDF5 reader's reply ends early");
    }
  }

 private:
  const std::string& path_;
  const std::string& bytes_;
  std::size_t pos_ = 0;
};

std::vector<Document> decode_documents(const std::string& path, const std::string& bytes) {
  Decoder in(path, bytes);
  std::vector<Document> docs;
  while (!in.at_end()) {
    Document& d = docs.emplace_back();
    d.id = in.string();
    d.where = in.string();
    const unsigned char flags = in.byte();
    if (flags & 1) d.prompt = in.string();
    if (flags & 2) {
      const std::uint64_t n = in.u64();
      in.need(n * 8);
      std::vector<std::int32_t> tokens(n);
      for (auto& t : tokens) t = static_cast<std::int32_t>(in.u64());
      d.tokens = std::move(tokens);
    }
    if (flags & 4) d.max_new_tokens = static_cast<int>(in.u64());
  }
  return docs;
}

}  // namespace

std::vector<Document> read_hdf5_documents(const std::string& path, const ReadOptions& options) {
  const std::string reply = run_isolated(
      path, [&] { return encode_documents(read_hdf5_documents_in_process(path, options)); },
      options.stop_requested);
  return decode_documents(path, reply);
}

}  // namespace infllm::io
