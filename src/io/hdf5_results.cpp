// hdf5_results.cpp: see hdf5_results.hpp.
#include "io/hdf5_results.hpp"

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "io/hdf5_file.hpp"
#include "io/hdf5_isolated.hpp"
#include "io/write_file.hpp"

namespace infllm::io {

namespace {

Hdf5Handle vlen_string_type() {
  Hdf5Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

// The file is built in memory: a failed call is HDF5's own failure (out of memory), not the
// disk's.
void check(herr_t rc, const std::string& path, const std::string& what) {
  if (rc < 0) throw InternalError(path + ": HDF5 failed to build " + what);
}

template <typename Get>
void write_strings(hid_t group, const char* name, const std::vector<ResultRecord>& recs, Get get,
                   const std::string& path) {
  Hdf5Handle type = vlen_string_type();
  const hsize_t dims[1] = {recs.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(
      H5Dcreate2(group, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& r : recs) ptrs.push_back(get(r).c_str());
  if (!recs.empty()) {
    check(H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), path, name);
  }
}

template <typename T, typename Get>
void write_numbers(hid_t group, const char* name, hid_t mem_type, hid_t file_type,
                   const std::vector<ResultRecord>& recs, Get get, const std::string& path) {
  std::vector<T> values;
  for (const auto& r : recs) values.push_back(static_cast<T>(get(r)));
  const hsize_t dims[1] = {recs.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(
      H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!recs.empty()) {
    check(H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), path, name);
  }
}

void write_string_attribute(hid_t obj, const char* name, const std::string& value,
                            const std::string& path) {
  Hdf5Handle type = vlen_string_type();
  Hdf5Handle space(H5Screate(H5S_SCALAR));
  Hdf5Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &p), path, name);
}

std::vector<std::string> read_strings(hid_t group, const char* name, const std::string& path) {
  Hdf5Handle set(H5Dopen2(group, name, H5P_DEFAULT));
  if (!set.valid()) throw InputError(path, std::string("/results/") + name, "missing dataset");
  Hdf5Handle space(H5Dget_space(set.get()));
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  Hdf5Handle type = vlen_string_type();
  std::vector<char*> raw(n, nullptr);
  if (n > 0 && H5Dread(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) {
    throw InputError(path, std::string("/results/") + name, "cannot read strings");
  }
  std::vector<std::string> out;
  for (char* s : raw) out.emplace_back(s ? s : "");
  if (n > 0) H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, raw.data());
  return out;
}

}  // namespace

template <typename T>
void write_column(hid_t group, const std::string& name, hid_t mem_type, hid_t file_type,
                  const std::vector<T>& values, const std::string& path) {
  const hsize_t dims[1] = {values.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                            H5P_DEFAULT));
  if (!values.empty()) {
    check(H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), path, name);
  }
}

// Builds the whole results file in memory (HDF5's core driver) and returns its bytes.
std::string hdf5_file_image(const std::string& name, const std::vector<ResultRecord>& recs,
                            const nlohmann::json& run_attributes, const RunTables* tables);

// NOTE: the file is built in memory and written with io::write_file, so every disk write is
// ours to check: HDF5 writing to disk itself left datasets it could not flush (disk full, a size
// limit) open inside the library, which crashed at exit while closing them again.
void write_hdf5_results(const std::string& path, const std::vector<ResultRecord>& recs,
                        const nlohmann::json& run_attributes, const RunTables* tables) {
  // write_file: a temporary file renamed into place, OutputError naming `path` and the OS error,
  // nothing half-written left; the journal beside `path` keeps every record for --resume.
  write_file(path, hdf5_file_image(path, recs, run_attributes, tables));
}

std::string hdf5_file_image(const std::string& name, const std::vector<ResultRecord>& recs,
                            const nlohmann::json& run_attributes, const RunTables* tables) {
  const std::string& tmp = name;  // what the messages name
  std::string image;
  {
    Hdf5Handle file = create_hdf5_in_memory(name);
    Hdf5Handle group(H5Gcreate2(file.get(), "/results", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    const hid_t g = group.get();
    write_strings(
        g, "id", recs, [](const ResultRecord& r) -> const std::string& { return r.id; }, tmp);
    write_strings(
        g, "status", recs, [](const ResultRecord& r) -> const std::string& { return r.status; },
        tmp);
    write_strings(
        g, "reason", recs, [](const ResultRecord& r) -> const std::string& { return r.reason; },
        tmp);
    write_strings(
        g, "finish_reason", recs,
        [](const ResultRecord& r) -> const std::string& { return r.finish_reason; }, tmp);
    write_strings(
        g, "text", recs, [](const ResultRecord& r) -> const std::string& { return r.text; }, tmp);
    // Variable-length int32 lists, one per request.
    const auto write_lists = [&](const char* name, auto get) {
      Hdf5Handle type(H5Tvlen_create(H5T_NATIVE_INT32));
      Hdf5Handle ftype(H5Tvlen_create(H5T_STD_I32LE));
      const hsize_t dims[1] = {recs.size()};
      Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
      Hdf5Handle set(
          H5Dcreate2(g, name, ftype.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      std::vector<hvl_t> raw;
      for (const auto& r : recs) {
        const std::vector<std::int32_t>& v = get(r);
        raw.push_back(hvl_t{v.size(), const_cast<std::int32_t*>(v.data())});
      }
      if (!recs.empty()) {
        check(H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), tmp,
              name);
      }
    };
    write_lists(
        "tokens", [](const ResultRecord& r) -> const auto& { return r.tokens; });
    write_lists(
        "creditors", [](const ResultRecord& r) -> const auto& { return r.creditors; });
    const hid_t i64 = H5T_NATIVE_INT64, f64 = H5T_NATIVE_DOUBLE;
    write_numbers<std::int64_t>(
        g, "prompt_tokens", i64, H5T_STD_I64LE, recs, [](const auto& r) { return r.prompt_tokens; },
        tmp);
    write_numbers<std::int64_t>(
        g, "generated_tokens", i64, H5T_STD_I64LE, recs,
        [](const auto& r) { return r.tokens.size(); }, tmp);
    write_numbers<std::int64_t>(
        g, "remote_blocks_max", i64, H5T_STD_I64LE, recs,
        [](const auto& r) { return r.remote_blocks_max; }, tmp);
    write_numbers<std::int64_t>(
        g, "preemptions", i64, H5T_STD_I64LE, recs, [](const auto& r) { return r.preemptions; },
        tmp);
    write_numbers<double>(
        g, "queue_s", f64, H5T_IEEE_F64LE, recs, [](const auto& r) { return r.queue_s; }, tmp);
    write_numbers<double>(
        g, "first_token_s", f64, H5T_IEEE_F64LE, recs,
        [](const auto& r) { return r.first_token_s; }, tmp);
    write_numbers<double>(
        g, "total_s", f64, H5T_IEEE_F64LE, recs, [](const auto& r) { return r.total_s; }, tmp);
    if (tables != nullptr) {
      Hdf5Handle steps(H5Gcreate2(file.get(), "/steps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      for (const auto& [name, values] : tables->steps) {
        write_column(steps.get(), name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, values, tmp);
      }
      Hdf5Handle ledger(H5Gcreate2(file.get(), "/ledger", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      for (const auto& [name, values] : tables->ledger) {
        write_column(ledger.get(), name, H5T_NATIVE_INT64, H5T_STD_I64LE, values, tmp);
      }
    }
    write_string_attribute(file.get(), "run", run_attributes.dump(), tmp);
    // `complete` last: a file without it was interrupted while being built.
    const std::int32_t one = 1;
    Hdf5Handle space(H5Screate(H5S_SCALAR));
    Hdf5Handle attr(
        H5Acreate2(file.get(), "complete", H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    check(H5Awrite(attr.get(), H5T_NATIVE_INT32, &one), tmp, "complete");
    check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), tmp, "flush");
    const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
    if (size < 0) throw InternalError(name + ": HDF5 could not size the file image");
    image.resize(static_cast<std::size_t>(size));
    if (H5Fget_file_image(file.get(), image.data(), image.size()) != size) {
      throw InternalError(name + ": HDF5 could not copy the file image");
    }
  }
  return image;
}

namespace {

std::vector<ResultRecord> read_hdf5_results_in_process(const std::string& path) {
  Hdf5Handle file = open_hdf5_read(path);
  if (H5Aexists(file.get(), "complete") <= 0) {
    throw InputError(path, "", "incomplete results file (no `complete` attribute)");
  }
  if (H5Lexists(file.get(), "/results", H5P_DEFAULT) <= 0) {
    throw InputError(path, "/results", "missing group");
  }
  Hdf5Handle group(H5Gopen2(file.get(), "/results", H5P_DEFAULT));
  const auto ids = read_strings(group.get(), "id", path);
  const auto status = read_strings(group.get(), "status", path);
  const auto reason = read_strings(group.get(), "reason", path);
  const auto finish = read_strings(group.get(), "finish_reason", path);
  const auto text = read_strings(group.get(), "text", path);
  std::vector<ResultRecord> out(ids.size());
  Hdf5Handle set(H5Dopen2(group.get(), "tokens", H5P_DEFAULT));
  Hdf5Handle type(H5Tvlen_create(H5T_NATIVE_INT32));
  std::vector<hvl_t> raw(ids.size());
  if (!ids.empty()) {
    if (!set.valid() ||
        H5Dread(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) {
      throw InputError(path, "/results/tokens", "cannot read token sequences");
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto& r = out[i];
    r.id = ids[i];
    r.status = status[i];
    r.reason = reason[i];
    r.finish_reason = finish[i];
    r.text = text[i];
    const auto* p = static_cast<const std::int32_t*>(raw[i].p);
    r.tokens.assign(p, p + raw[i].len);
  }
  if (!ids.empty()) {
    Hdf5Handle space(H5Dget_space(set.get()));
    H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, raw.data());
  }
  return out;
}

}  // namespace

// Read in a child process (io/hdf5_isolated.hpp): `inspect` is handed files from anywhere. The
// records travel as JSON lines, the journal's own encoding.
std::vector<ResultRecord> read_hdf5_results(const std::string& path) {
  const std::string reply = run_isolated(path, [&] {
    std::string lines;
    for (const ResultRecord& r : read_hdf5_results_in_process(path))
      lines += to_json(r).dump() + "\n";
    return lines;
  });
  std::vector<ResultRecord> records;
  std::size_t start = 0;
  while (start < reply.size()) {
    const std::size_t end = reply.find('\n', start);
    const std::string line = reply.substr(start, end - start);
    records.push_back(record_from_json(nlohmann::json::parse(line), path,
                                       "record " + std::to_string(records.size())));
    start = end == std::string::npos ? reply.size() : end + 1;
  }
  return records;
}

}  // namespace infllm::io
