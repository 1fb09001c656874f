// hdf5_file_test.cpp: HDF5 handles are closed, and bad files give one InputError naming them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/errors.hpp"
#include "io/hdf5_file.hpp"
#include "support/temp_dir.hpp"

namespace infllm::io {
namespace {

// In one folder per test process, removed when the process ends (support/temp_dir.hpp).
std::filesystem::path temp_path(const std::string& name) {
  static const infllm::testing::TempDir dir("infllm-hdf5-file-test");
  return dir.path() / name;
}

TEST(Hdf5File, WritesAndReadsBackADataset) {
  const auto path = temp_path("ok.h5").string();
  {
    Hdf5Handle file = create_hdf5(path);
    const hsize_t dims[1] = {4};
    Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
    Hdf5Handle set(H5Dcreate2(file.get(), "/values", H5T_NATIVE_INT, space.get(), H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT));
    const int values[4] = {1, 2, 3, 5};
    ASSERT_GE(H5Dwrite(set.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), 0);
  }
  Hdf5Handle file = open_hdf5_read(path);
  Hdf5Handle set(H5Dopen2(file.get(), "/values", H5P_DEFAULT));
  int back[4] = {};
  ASSERT_GE(H5Dread(set.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
  EXPECT_EQ(back[3], 5);
}

TEST(Hdf5File, MissingFileNamesIt) {
  try {
    open_hdf5_read("/nonexistent/docs.h5");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/docs.h5");
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos);
  }
}

TEST(Hdf5File, TextFileIsNotHdf5) {
  const auto path = temp_path("not.h5").string();
  std::ofstream(path) << "{\"id\": 1}\n";
  try {
    open_hdf5_read(path);
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos) << e.what();
  }
}

TEST(Hdf5File, UnwritableDirectoryNamesThePath) {
  EXPECT_THROW(create_hdf5("/nonexistent/dir/out.h5"), OutputError);
}

TEST(Hdf5File, MovedHandleClosesOnce) {
  Hdf5Handle a(H5Screate(H5S_SCALAR));
  ASSERT_TRUE(a.valid());
  Hdf5Handle b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(b.valid());
  EXPECT_GT(H5Iis_valid(b.get()), 0);
}

}  // namespace
}  // namespace infllm::io
