/* make_seeds.c: writes the two HDF5 seed inputs of fuzz/corpus/hdf5_input (text and token
 * documents in infllm's input layout, docs/usage.md). Built and run by fuzz/make_corpus.sh:
 *   h5pcc -o make_seeds fuzz/make_seeds.c && ./make_seeds OUTDIR */
#include <hdf5.h>
#include <stdio.h>

static void strings(hid_t g, const char* name, const char** v, hsize_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(g, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  H5Dclose(d), H5Sclose(s), H5Tclose(t);
}

int main(int argc, char** argv) {
  char path[4096];
  if (argc != 2) return 2;
  snprintf(path, sizeof path, "%s/text.h5", argv[1]);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t g = H5Gcreate2(f, "/documents", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char* ids[] = {"d0", "d1"};
  const char* text[] = {"It is a truth", "universally acknowledged"};
  strings(g, "id", ids, 2);
  strings(g, "text", text, 2);
  int max_new[] = {4, 8};
  hsize_t n = 2;
  hid_t s = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(g, "max_new_tokens", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, max_new);
  H5Dclose(d), H5Sclose(s), H5Gclose(g), H5Fclose(f);

  snprintf(path, sizeof path, "%s/tokens.h5", argv[1]);
  f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  g = H5Gcreate2(f, "/documents", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char* tids[] = {"a", "b"};
  strings(g, "id", tids, 2);
  int a[] = {1, 2, 3}, b[] = {511};
  hvl_t lists[] = {{3, a}, {1, b}};
  hid_t vt = H5Tvlen_create(H5T_NATIVE_INT);
  s = H5Screate_simple(1, &n, NULL);
  d = H5Dcreate2(g, "tokens", vt, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, vt, H5S_ALL, H5S_ALL, H5P_DEFAULT, lists);
  H5Dclose(d), H5Sclose(s), H5Tclose(vt), H5Gclose(g), H5Fclose(f);
  return 0;
}
