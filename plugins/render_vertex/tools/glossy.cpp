// The glossy SH loop of the renderer for compare_technologies.py: scalar per point (as Warp
// and numba run it) and in 8-lane packets (as csrc/kernels.cpp does).
#include <cmath>
#include <cstdint>
extern "C" void glossy_scalar(const float* d, const float* rate, const float* w, const int* gen, int ngen, int rows,
                              const int* bstart, const int* brows, int bands, int M, float* out) {
  for (int m = 0; m < M; ++m) {
    float mono[81]; mono[0] = 1;
    for (int g = 0; g < ngen; ++g) mono[gen[3*g]] = mono[gen[3*g+1]] * d[3*m + gen[3*g+2]];
    float s[3] = {0,0,0};
    for (int l = 0; l < bands; ++l) {
      float gl = std::exp(-float(l*l) * rate[m]);
      for (int j = bstart[l]; j < bstart[l] + brows[l]; ++j)
        for (int c = 0; c < 3; ++c) s[c] += gl * mono[j] * w[(l*rows + j)*3 + c];
    }
    for (int c = 0; c < 3; ++c) out[3*m+c] = s[c];
  }
}
typedef float V __attribute__((vector_size(32)));
extern "C" void glossy_packets(const float* d, const float* rate, const float* w, const int* gen, int ngen, int rows,
                               const int* bstart, const int* brows, int bands, int M, float* out) {
  for (int m0 = 0; m0 + 8 <= M; m0 += 8) {
    V mono[81], dd[3], r;
    for (int p = 0; p < 8; ++p) { for (int c = 0; c < 3; ++c) dd[c][p] = d[3*(m0+p)+c]; r[p] = rate[m0+p]; }
    mono[0] = V{} + 1;
    for (int g = 0; g < ngen; ++g) mono[gen[3*g]] = mono[gen[3*g+1]] * dd[gen[3*g+2]];
    V s0 = {}, s1 = {}, s2 = {};
    for (int l = 0; l < bands; ++l) {
      V gl; for (int p = 0; p < 8; ++p) gl[p] = std::exp(-float(l*l) * r[p]);
      V b0 = {}, b1 = {}, b2 = {};
      for (int j = bstart[l]; j < bstart[l] + brows[l]; ++j) {
        const float* wj = w + (l*rows + j)*3;
        b0 += mono[j] * wj[0]; b1 += mono[j] * wj[1]; b2 += mono[j] * wj[2];
      }
      s0 += gl * b0; s1 += gl * b1; s2 += gl * b2;
    }
    for (int p = 0; p < 8; ++p) { out[3*(m0+p)] = s0[p]; out[3*(m0+p)+1] = s1[p]; out[3*(m0+p)+2] = s2[p]; }
  }
}
