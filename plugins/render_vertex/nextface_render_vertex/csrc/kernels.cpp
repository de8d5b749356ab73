// Compiled CPU kernels of the `vertex` renderer: z-buffer, per-pixel pass (barycentrics,
// interpolation, texture sampling, SH shading) and analytic antialiasing, each with its
// analytic backward. Plain C++17 with a C ABI (loaded with ctypes: no Python or torch
// headers, so it builds in seconds), templated on the scalar (float32 / float64).
//
// Arithmetic of the visibility and barycentric steps follows nextface_core/raster.py
// operation by operation (build with -ffp-contract=off: no fused multiply-adds), so
// coverage, depth and barycentrics equal the PyTorch rasteriser's bit for bit.
//
// Determinism: every reduction has a fixed order whatever the number of threads. Work is
// cut into fixed chunks (never by thread count); per-chunk partial sums of the light
// gradient are added in chunk order; scatters to vertices and texels run sequentially in
// pixel order (one thread per output array). The z-buffer's atomic max is order-free.

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include <algorithm>

namespace {

constexpr int kMaxRows = 81;   // monomials of degree <= 8 with z power 0 or 1 (= 9² SH coefficients)
constexpr int kMaxBands = 9;
// pixels shaded together: one 256-bit register of lanes (8 float32, 4 float64)
template <class T>
constexpr int kPacket = 32 / int(sizeof(T));
constexpr int kChunk = 1024;   // covered pixels per chunk of the light-gradient reduction

// Run body(i) for i in [0, n) on up to `threads` threads; each thread takes a contiguous
// range. Used only where the result does not depend on how the range is cut.
template <class F>
void parallel_for(int64_t n, int threads, F body) {
  if (threads <= 1 || n < 2) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  int t = static_cast<int>(std::min<int64_t>(threads, n));
  std::vector<std::thread> pool;
  int64_t per = (n + t - 1) / t;
  for (int k = 0; k < t; ++k) {
    int64_t lo = k * per, hi = std::min<int64_t>(n, lo + per);
    if (lo >= hi) break;
    pool.emplace_back([=, &body] { for (int64_t i = lo; i < hi; ++i) body(i); });
  }
  for (auto& th : pool) th.join();
}

// ---------------------------------------------------------------------------------------
// 1. Visibility: z-buffer of (1/z bits) << 32 | face, nearest wins, ties to the larger face.

template <class T>
void zbuffer(const T* pixels, const T* depth, const int32_t* faces, int B, int N, int F, int H, int W,
             int threads, int32_t* face_out, T* orient_out) {
  const int64_t total = int64_t(B) * H * W;
  std::vector<std::atomic<int64_t>> keys(total);
  for (auto& k : keys) k.store(-1, std::memory_order_relaxed);
  const T cx = T(W / 2.0), cy = T(H / 2.0);
  const T ox = T(0.5 - W / 2.0), oy = T(0.5 - H / 2.0);
  const int64_t faces_total = int64_t(B) * F;
  const int64_t blocks = (faces_total + 4095) / 4096;
  parallel_for(blocks, threads, [&](int64_t block) {
    int64_t end = std::min<int64_t>(faces_total, (block + 1) * 4096);
    for (int64_t row = block * 4096; row < end; ++row) {
      int b = int(row / F), f = int(row % F);
      T x[3], y[3], z[3];
      for (int i = 0; i < 3; ++i) {
        int64_t v = int64_t(b) * N + faces[3 * f + i];
        x[i] = pixels[2 * v] - cx;
        y[i] = pixels[2 * v + 1] - cy;
        z[i] = depth[v];
      }
      T area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]);
      T sign = area2 > 0 ? T(1) : (area2 < 0 ? T(-1) : T(0));
      orient_out[row] = sign;
      bool valid = z[0] > 0 && z[1] > 0 && z[2] > 0 && area2 != 0 && std::isfinite(area2) &&
                   std::isfinite(z[0]) && std::isfinite(z[1]) && std::isfinite(z[2]);
      if (!valid) continue;
      T a[3], bb[3], c[3], iz[3];
      bool owner[3];
      for (int i = 0; i < 3; ++i) {
        int j = (i + 1) % 3, k = (i + 2) % 3;
        a[i] = (y[j] - y[k]) * sign;
        bb[i] = (x[k] - x[j]) * sign;
        c[i] = (x[j] * y[k] - y[j] * x[k]) * sign;
        owner[i] = a[i] > 0 || (a[i] == 0 && bb[i] > 0);
        iz[i] = T(1) / (z[i] * std::fabs(area2));
      }
      T xmin = std::min({x[0], x[1], x[2]}), xmax = std::max({x[0], x[1], x[2]});
      T ymin = std::min({y[0], y[1], y[2]}), ymax = std::max({y[0], y[1], y[2]});
      T lox = std::ceil(xmin + cx - T(0.5)), loy = std::ceil(ymin + cy - T(0.5));
      T hix = std::floor(xmax + cx - T(0.5)), hiy = std::floor(ymax + cy - T(0.5));
      lox = std::min(std::max(lox, T(0)), T(W)); loy = std::min(std::max(loy, T(0)), T(H));
      hix = std::max(std::min(hix, T(W - 1)), lox - 1); hiy = std::max(std::min(hiy, T(H - 1)), loy - 1);
      int x0 = int(lox), x1 = int(hix), y0 = int(loy), y1 = int(hiy);
      for (int py = y0; py <= y1; ++py) {
        T gy = T(py - y0) + (T(y0) + oy);
        for (int px = x0; px <= x1; ++px) {
          T gx = T(px - x0) + (T(x0) + ox);
          bool inside = true;
          T w[3];
          for (int i = 0; i < 3; ++i) {
            T ax = a[i] * gx;
            T by = bb[i] * gy;
            T s = ax + by;
            w[i] = s + c[i];
            inside &= owner[i] ? (w[i] >= 0) : (w[i] > 0);
          }
          if (!inside) continue;
          T d0 = w[0] * iz[0], d1 = w[1] * iz[1], d2 = w[2] * iz[2];
          float key_depth = float((d0 + d1) + d2);
          if (!(key_depth > 0)) continue;
          int32_t bits;
          std::memcpy(&bits, &key_depth, 4);
          int64_t key = (int64_t(bits) << 32) | int64_t(f);
          auto& slot = keys[(int64_t(b) * H + py) * W + px];
          int64_t old = slot.load(std::memory_order_relaxed);
          while (key > old && !slot.compare_exchange_weak(old, key, std::memory_order_relaxed)) {}
        }
      }
    }
  });
  for (int64_t i = 0; i < total; ++i) {
    int64_t k = keys[i].load(std::memory_order_relaxed);
    face_out[i] = k >= 0 ? int32_t(k & 0xFFFFFFFF) : -1;
  }
}

// silhouette edges per image and face (nextface_core.raster.silhouette_edges): bit i set when
// no face is across edge i (neighbors < 0) or the face across faces the other way on screen
template <class T>
void silhouettes(const T* orient, const int64_t* neighbors, int B, int F, uint8_t* bits) {
  for (int b = 0; b < B; ++b)
    for (int f = 0; f < F; ++f) {
      uint8_t v = 0;
      for (int i = 0; i < 3; ++i) {
        int64_t n = neighbors[3 * f + i];
        if (n < 0 || orient[int64_t(b) * F + n] != orient[int64_t(b) * F + f]) v |= uint8_t(1 << i);
      }
      bits[int64_t(b) * F + f] = v;
    }
}

// ---------------------------------------------------------------------------------------
// 2. The per-pixel pass.

struct Texture {
  const void* data;   // [tb, th, tw, channels] contiguous
  void* grad;         // same layout (backward), or null
  int batch, height, width, channels;
};

struct ShadeArgs {
  int B, N, H, W, F, mode, bands, covered_count, threads;
  const int32_t* covered;      // [M] flat pixel indices b·H·W + y·W + x, ascending
  const int32_t* face_index;   // [B·H·W]
  const int32_t* faces;        // [F,3]
  const void* pixels;          // [B·N,2]
  const void* depth;           // [B·N]
  const void* positions;       // [B·N,3] camera space
  const void* normals;         // [B·N,3]
  const void* uv;              // [N,2]
  Texture tex[3];              // diffuse, specular, roughness
  Texture shadow;              // [tb, th, tw, 6] shadow factors (diffuse rgb, specular rgb), or data null: none
  // light on the monomial basis: rows are monomials (even block, then odd block)
  int rows;                    // monomials in use (<= 81)
  int diffuse_rows[2];         // rows used by the irradiance, per block: [0, e) and [K_e, K_e + o)
  int band_rows[kMaxBands];    // band l uses rows [start_l, start_l + band_rows[l])
  int band_start[kMaxBands];
  const int32_t* gen;          // [rows-1, 3]: (row, parent row, axis): row = parent · d[axis]
  const int32_t* deriv;        // [rows, 3]: lower row of ∂/∂axis, or -1 (power in deriv_power)
  const int32_t* deriv_power;  // [rows, 3]
  const void* sh;              // [B, bands², 3] SH light
  const void* conv;            // [rows, bands²] the SH basis on the monomial rows
  const void* lambert;         // [bands] clamped-cosine kernel per band
  // outputs (forward)
  void* image;                 // [B·H·W, 4] rgb + coverage 1 (zeros elsewhere)
  void* depth_image;           // [B·H·W]
  // backward
  const void* grad_image;      // [B·H·W, 4]
  void* grad_pixels;           // [B·N,2]
  void* grad_depth;            // [B·N]
  void* grad_positions;        // [B·N,3]
  void* grad_normals;          // [B·N,3]
  void* grad_sh;               // [B, bands², 3]
  // set inside: the light on the monomial rows, irradiance [B, rows, 3] (Lambert kernel
  // applied) and glossy per band [B, bands, rows, 3]
  const void* wd;
  const void* wg;
  // per covered pixel, the forward's Surface (barycentrics, attributes, lookups): written by
  // the forward when not null, read by the backward (which then does no lookups again)
  void* surfaces;
};

enum Mode { kFull = 0, kAlbedo = 1, kLighting = 2 };

constexpr double kInvPi = 0.31830988618379067;

// barycentrics of pixel (px, py) in a triangle: as raster.rasterize computes them
template <class T>
struct Bary {
  T x[3], y[3], z[3];
  T e1x, e1y, e2x, e2y, area, dx, dy, b1, b2, q[3], inv, w[3], depth;

  void forward(int px, int py) {
    e1x = x[2] - x[0]; e1y = y[2] - y[0]; e2x = x[1] - x[0]; e2y = y[1] - y[0];
    area = e2x * e1y - e2y * e1x;
    dx = T(px) + (T(0.5) - x[0]);
    dy = T(py) + (T(0.5) - y[0]);
    b1 = (e1y * dx - e1x * dy) / area;
    b2 = (e2x * dy - e2y * dx) / area;
    q[0] = ((T(1) - b1) - b2) / z[0];
    q[1] = b1 / z[1];
    q[2] = b2 / z[2];
    inv = (q[0] + q[1]) + q[2];
    for (int i = 0; i < 3; ++i) w[i] = q[i] / inv;
    depth = T(1) / inv;
  }

  // gradients of the weights gw → screen positions gx, gy and depths gz of the corners
  void backward(const T gw[3], T gx[3], T gy[3], T gz[3]) const {
    T dot = gw[0] * w[0] + gw[1] * w[1] + gw[2] * w[2];
    T gq[3];
    for (int i = 0; i < 3; ++i) gq[i] = (gw[i] - dot) / inv;
    T gb1 = -gq[0] / z[0] + gq[1] / z[1];
    T gb2 = -gq[0] / z[0] + gq[2] / z[2];
    for (int i = 0; i < 3; ++i) gz[i] = -gq[i] * q[i] / z[i];
    T gn1 = gb1 / area, gn2 = gb2 / area, garea = -(gb1 * b1 + gb2 * b2) / area;
    T ge1y = gn1 * dx + garea * e2x, ge1x = -gn1 * dy - garea * e2y;
    T ge2x = gn2 * dy + garea * e1y, ge2y = -gn2 * dx - garea * e1x;
    T gdx = gn1 * e1y - gn2 * e2y, gdy = -gn1 * e1x + gn2 * e2x;
    gx[2] = ge1x; gy[2] = ge1y; gx[1] = ge2x; gy[1] = ge2y;
    gx[0] = -ge1x - ge2x - gdx; gy[0] = -ge1y - ge2y - gdy;
  }
};

// bilinear lookup clamped to the outer texel centres (grid_sample, border, align_corners=False)
template <class T>
struct Lookup {
  int64_t base;   // element offset of texel (y0, x0) in its layer
  int64_t step_x, step_y;
  T fx, fy, sx, sy;  // fractions; sx, sy: d(texel coordinate)/d(u, v) (0 where clamped)

  void locate(const Texture& t, int image, T u, T v) {
    T x = u * T(t.width) - T(0.5), y = v * T(t.height) - T(0.5);
    sx = (x >= 0 && x <= T(t.width - 1)) ? T(t.width) : T(0);
    sy = (y >= 0 && y <= T(t.height - 1)) ? T(t.height) : T(0);
    x = std::min(std::max(x, T(0)), T(t.width - 1));
    y = std::min(std::max(y, T(0)), T(t.height - 1));
    int x0 = std::min(int(std::floor(x)), std::max(t.width - 2, 0));
    int y0 = std::min(int(std::floor(y)), std::max(t.height - 2, 0));
    fx = x - T(x0); fy = y - T(y0);
    step_x = t.width > 1 ? t.channels : 0;
    step_y = t.height > 1 ? int64_t(t.width) * t.channels : 0;
    int layer = t.batch > 1 ? image : 0;
    base = ((int64_t(layer) * t.height + y0) * t.width + x0) * t.channels;
  }

  // value per channel, and its derivatives along the texel x and y axes
  void sample(const Texture& t, T* out, T* ddx, T* ddy) const {
    const T* d = static_cast<const T*>(t.data) + base;
    for (int c = 0; c < t.channels; ++c) {
      T t00 = d[c], t01 = d[c + step_x], t10 = d[c + step_y], t11 = d[c + step_x + step_y];
      T top = t00 + fx * (t01 - t00), bottom = t10 + fx * (t11 - t10);
      out[c] = top + fy * (bottom - top);
      ddx[c] = (T(1) - fy) * (t01 - t00) + fy * (t11 - t10);
      ddy[c] = bottom - top;
    }
  }

  void scatter(const Texture& t, const T* g) const {
    T* d = static_cast<T*>(t.grad) + base;
    T w00 = (T(1) - fx) * (T(1) - fy), w01 = fx * (T(1) - fy), w10 = (T(1) - fx) * fy, w11 = fx * fy;
    for (int c = 0; c < t.channels; ++c) {
      d[c] += w00 * g[c];
      d[c + step_x] += w01 * g[c];
      d[c + step_y] += w10 * g[c];
      d[c + step_x + step_y] += w11 * g[c];
    }
  }
};

// Per covered pixel: geometry and material at the pixel centre.
template <class T>
struct Surface {
  int image;
  int64_t rows[3];
  Bary<T> bary;
  T position[3], normal[3], uv[2];
  T material[7];  // diffuse rgb, specular rgb, roughness (times the shadow factors, when there are shadows)
  Lookup<T> look[3];
  T dmat_dx[7], dmat_dy[7];  // of the sampled maps, before the shadow factors
  // with shadows: the maps' values before the factors, the factors, and their derivatives
  T unshadowed[6], factor[6], dfac_dx[6], dfac_dy[6];
  Lookup<T> look_shadow;
};

// barycentrics of covered pixel `flat`; rows[i]: b·N + vertex of corner i; returns the image
template <class T>
int load_bary(const ShadeArgs& a, int32_t flat, Bary<T>& bary, int64_t rows[3]) {
  const int64_t hw = int64_t(a.H) * a.W;
  int image = int(flat / hw), pix = int(flat % hw), face = a.face_index[flat];
  const T* pixels = static_cast<const T*>(a.pixels);
  const T* depth = static_cast<const T*>(a.depth);
  for (int i = 0; i < 3; ++i) {
    rows[i] = int64_t(image) * a.N + a.faces[3 * face + i];
    bary.x[i] = pixels[2 * rows[i]];
    bary.y[i] = pixels[2 * rows[i] + 1];
    bary.z[i] = depth[rows[i]];
  }
  bary.forward(pix % a.W, pix / a.W);
  return image;
}

template <class T>
void interpolate_uv(const ShadeArgs& a, const int64_t rows[3], int image, const T w[3], T out[2]) {
  const T* uv = static_cast<const T*>(a.uv);
  int64_t v[3];
  for (int i = 0; i < 3; ++i) v[i] = rows[i] - int64_t(image) * a.N;
  for (int c = 0; c < 2; ++c) out[c] = (uv[2 * v[0] + c] * w[0] + uv[2 * v[1] + c] * w[1]) + uv[2 * v[2] + c] * w[2];
}

template <class T>
void load_surface(const ShadeArgs& a, int32_t flat, Surface<T>& s) {
  s.image = load_bary(a, flat, s.bary, s.rows);
  const T* w = s.bary.w;
  const T* pos = static_cast<const T*>(a.positions);
  const T* nrm = static_cast<const T*>(a.normals);
  for (int c = 0; c < 3; ++c) {
    s.position[c] = (pos[3 * s.rows[0] + c] * w[0] + pos[3 * s.rows[1] + c] * w[1]) + pos[3 * s.rows[2] + c] * w[2];
    s.normal[c] = (nrm[3 * s.rows[0] + c] * w[0] + nrm[3 * s.rows[1] + c] * w[1]) + nrm[3 * s.rows[2] + c] * w[2];
  }
  interpolate_uv(a, s.rows, s.image, w, s.uv);
  int used = a.mode == kFull ? 3 : (a.mode == kAlbedo ? 1 : 0);
  int offset = 0;
  for (int k = 0; k < 3; ++k) {
    const Texture& t = a.tex[k];
    if (k < used) {
      s.look[k].locate(t, s.image, s.uv[0], s.uv[1]);
      s.look[k].sample(t, s.material + offset, s.dmat_dx + offset, s.dmat_dy + offset);
    }
    offset += t.channels;
  }
  if (a.shadow.data && used == 3) {
    s.look_shadow.locate(a.shadow, s.image, s.uv[0], s.uv[1]);
    s.look_shadow.sample(a.shadow, s.factor, s.dfac_dx, s.dfac_dy);
    for (int c = 0; c < 6; ++c) {
      s.unshadowed[c] = s.material[c];
      s.material[c] *= s.factor[c];
    }
  }
}

// Packet of up to kPacket<T> pixels of one image, shaded together: every per-pixel quantity is
// one GCC vector of kPacket<T> lanes (structure of arrays), so the SH contractions run as
// SIMD multiply-adds. Lanes past `count` repeat the last pixel and get zero gradients.
template <class T>
struct Lanes {
  typedef T type __attribute__((vector_size(kPacket<T> * sizeof(T))));
};

template <class T>
struct Packet {
  using V = typename Lanes<T>::type;
  int count;
  V normal[3], position[3], material[7];  // interpolated inputs
  V n[3], sn;                             // unit normal, 1/|normal|
  V v[3], sp;                             // unit view vector, 1/|position|
  V r[3], ndv;                            // mirror direction, n·v
  V mono_n[kMaxRows], mono_r[kMaxRows];
  V irr[3];                               // E(n)
  V band[kMaxBands][3];                   // per-band glossy radiance s_lc(R)
  V gl[kMaxBands];                        // lobe weights g_l(r)
  V rate_scale, rough_pass, rough_clamped;
  V glossy[3];
};

// light-gradient accumulators of one chunk, lane-wise (summed over lanes at the chunk's end)
template <class T>
struct LightGrad {
  using V = typename Lanes<T>::type;
  V wd[kMaxRows][3];
  V wg[kMaxBands][kMaxRows][3];
};

template <class T>
void load_packet(const Surface<T>* s, Packet<T>& k) {
  for (int p = 0; p < kPacket<T>; ++p) {
    const Surface<T>& q = s[std::min(p, k.count - 1)];
    for (int c = 0; c < 3; ++c) { k.normal[c][p] = q.normal[c]; k.position[c][p] = q.position[c]; }
    for (int c = 0; c < 7; ++c) k.material[c][p] = q.material[c];
  }
}

template <class V>
void monomials(const ShadeArgs& a, const V* d, V* mono) {
  mono[0] = mono[0] * 0 + 1;
  for (int g = 0; g < a.rows - 1; ++g) mono[a.gen[3 * g]] = mono[a.gen[3 * g + 1]] * d[a.gen[3 * g + 2]];
}

// u = x / |x| per lane (|x|² clamped at 1e-24, as nextface_core.shading._unit); returns 1/|x|
template <class T, class V>
V unit(const V* x, V* u) {
  V sq = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
  V s;
  for (int p = 0; p < kPacket<T>; ++p) s[p] = T(1) / std::sqrt(std::max(sq[p], T(1e-24)));
  for (int c = 0; c < 3; ++c) u[c] = x[c] * s;
  return s;
}

// gradient g of u = x·s (s = 1/|x|) → gradient of x (no radial part unless |x| was clamped)
template <class T, class V>
void unit_backward(const V* x, const V* u, V s, const V* g, V* gx) {
  V sq = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
  V dot = u[0] * g[0] + u[1] * g[1] + u[2] * g[2];
  V live = sq >= T(1e-24) ? V{} + 1 : V{};
  for (int c = 0; c < 3; ++c) gx[c] = s * (g[c] - live * u[c] * dot);
}

// forward shading of a loaded packet → colour out[3]
template <class T>
void shade_packet(const ShadeArgs& a, Packet<T>& k, typename Packet<T>::V* out) {
  using V = typename Packet<T>::V;
  const V zero = {};
  if (a.mode == kAlbedo) {
    for (int c = 0; c < 3; ++c) out[c] = k.material[c];
    return;
  }
  k.sn = unit<T>(k.normal, k.n);
  monomials(a, k.n, k.mono_n);
  const T* wd = static_cast<const T*>(a.wd);  // already offset to the packet's image
  V e0 = zero, e1 = zero, e2 = zero;
  for (int blk = 0; blk < 2; ++blk) {
    int lo = blk == 0 ? 0 : a.band_start[1], hi = lo + a.diffuse_rows[blk];
    for (int j = lo; j < hi; ++j) {
      e0 += k.mono_n[j] * wd[3 * j];
      e1 += k.mono_n[j] * wd[3 * j + 1];
      e2 += k.mono_n[j] * wd[3 * j + 2];
    }
  }
  k.irr[0] = e0; k.irr[1] = e1; k.irr[2] = e2;
  if (a.mode == kLighting) {
    for (int c = 0; c < 3; ++c) out[c] = k.irr[c] * T(kInvPi);
    return;
  }
  V u[3];
  k.sp = unit<T>(k.position, u);
  for (int c = 0; c < 3; ++c) k.v[c] = -u[c];
  k.ndv = k.n[0] * k.v[0] + k.n[1] * k.v[1] + k.n[2] * k.v[2];
  for (int c = 0; c < 3; ++c) k.r[c] = T(2) * k.ndv * k.n[c] - k.v[c];
  // lobe weights g_l = max(exp(−l² rate), 1e-30), rate = r²/max(4(1−r²), 1e-6):
  // g_l = q^(l²) with q = exp(−rate), by g_l = g_{l−1} · q^(2l−1)
  V q, step, q2;
  for (int p = 0; p < kPacket<T>; ++p) {
    T r = k.material[6][p];
    k.rough_pass[p] = (r >= 0 && r <= 1) ? T(1) : T(0);
    T rc = std::min(std::max(r, T(0)), T(1));
    k.rough_clamped[p] = rc;
    T r2 = rc * rc, denom = T(4) * (T(1) - r2);
    T free = denom >= T(1e-6) ? T(1) : T(0);
    denom = std::max(denom, T(1e-6));
    k.rate_scale[p] = T(1) / denom + free * T(4) * r2 / (denom * denom);  // d rate / d r²
    q[p] = std::exp(-r2 / denom);
  }
  q2 = q * q;
  step = q;
  V g = zero + 1;
  for (int l = 0; l < a.bands; ++l) {
    if (l > 0) { g = g * step; step = step * q2; }
    for (int p = 0; p < kPacket<T>; ++p) k.gl[l][p] = std::max(g[p], T(1e-30));
  }
  monomials(a, k.r, k.mono_r);
  const T* wg = static_cast<const T*>(a.wg);
  for (int c = 0; c < 3; ++c) k.glossy[c] = zero;
  for (int l = 0; l < a.bands; ++l) {
    const T* w = wg + int64_t(l) * a.rows * 3;
    V b0 = zero, b1 = zero, b2 = zero;
    for (int j = a.band_start[l]; j < a.band_start[l] + a.band_rows[l]; ++j) {
      b0 += k.mono_r[j] * w[3 * j];
      b1 += k.mono_r[j] * w[3 * j + 1];
      b2 += k.mono_r[j] * w[3 * j + 2];
    }
    k.band[l][0] = b0; k.band[l][1] = b1; k.band[l][2] = b2;
    for (int c = 0; c < 3; ++c) k.glossy[c] += k.gl[l] * k.band[l][c];
  }
  for (int c = 0; c < 3; ++c) out[c] = k.material[c] * k.irr[c] * T(kInvPi) + k.material[3 + c] * k.glossy[c];
}

// gradient of Σ_j h_j mono_j(d) w.r.t. the direction d (rows of the derivative table)
template <class T, class V>
void direction_grad(const ShadeArgs& a, const V* h, const V* mono, int lo, int hi, V* gd) {
  for (int j = lo; j < hi; ++j)
    for (int axis = 0; axis < 3; ++axis) {
      int lower = a.deriv[3 * j + axis];
      if (lower >= 0) gd[axis] += h[j] * mono[lower] * T(a.deriv_power[3 * j + axis]);
    }
}

// backward of shade_packet (forward state in k): colour gradient gout[3] → material
// gradients gmat[7], normal and position gradients, lane-wise light gradients in lg
template <class T>
void shade_packet_backward(const ShadeArgs& a, Packet<T>& k, const typename Packet<T>::V* gout,
                           typename Packet<T>::V* gmat, typename Packet<T>::V* gnormal,
                           typename Packet<T>::V* gposition, LightGrad<T>& lg) {
  using V = typename Packet<T>::V;
  const V zero = {};
  for (int c = 0; c < 7; ++c) gmat[c] = zero;
  for (int c = 0; c < 3; ++c) gnormal[c] = gposition[c] = zero;
  if (a.mode == kAlbedo) {
    for (int c = 0; c < 3; ++c) gmat[c] = gout[c];
    return;
  }
  V gE[3], gS[3], gn[3], h[kMaxRows];
  for (int c = 0; c < 3; ++c) {
    if (a.mode == kLighting) {
      gE[c] = gout[c] * T(kInvPi);
    } else {
      gE[c] = gout[c] * k.material[c] * T(kInvPi);
      gS[c] = gout[c] * k.material[3 + c];
      gmat[c] = gout[c] * k.irr[c] * T(kInvPi);
      gmat[3 + c] = gout[c] * k.glossy[c];
    }
    gn[c] = zero;
  }
  // irradiance: light weights and normal
  const T* wd = static_cast<const T*>(a.wd);
  for (int blk = 0; blk < 2; ++blk) {
    int lo = blk == 0 ? 0 : a.band_start[1], hi = lo + a.diffuse_rows[blk];
    for (int j = lo; j < hi; ++j) {
      for (int c = 0; c < 3; ++c) lg.wd[j][c] += k.mono_n[j] * gE[c];
      h[j] = wd[3 * j] * gE[0] + wd[3 * j + 1] * gE[1] + wd[3 * j + 2] * gE[2];
    }
    direction_grad<T>(a, h, k.mono_n, lo, hi, gn);
  }
  if (a.mode == kFull) {
    // glossy: per-band weights, light weights, mirror direction, roughness
    const T* wg = static_cast<const T*>(a.wg);
    for (int j = 0; j < a.rows; ++j) h[j] = zero;
    V grate = zero;
    for (int l = 0; l < a.bands; ++l) {
      const T* w = wg + int64_t(l) * a.rows * 3;
      V ggs[3];
      for (int c = 0; c < 3; ++c) ggs[c] = k.gl[l] * gS[c];
      V ggl = gS[0] * k.band[l][0] + gS[1] * k.band[l][1] + gS[2] * k.band[l][2];
      V live = k.gl[l] > T(1e-30) ? zero + 1 : zero;
      grate -= ggl * k.gl[l] * live * T(l * l);
      for (int j = a.band_start[l]; j < a.band_start[l] + a.band_rows[l]; ++j) {
        for (int c = 0; c < 3; ++c) lg.wg[l][j][c] += k.mono_r[j] * ggs[c];
        h[j] += w[3 * j] * ggs[0] + w[3 * j + 1] * ggs[1] + w[3 * j + 2] * ggs[2];
      }
    }
    V gr[3] = {zero, zero, zero}, gv[3], gu[3], u[3];
    direction_grad<T>(a, h, k.mono_r, 0, a.rows, gr);
    gmat[6] = grate * k.rate_scale * T(2) * k.rough_clamped * k.rough_pass;
    // R = 2 (n·v) n − v
    V gdotn = gr[0] * k.n[0] + gr[1] * k.n[1] + gr[2] * k.n[2];
    for (int c = 0; c < 3; ++c) {
      gn[c] += T(2) * k.ndv * gr[c] + T(2) * gdotn * k.v[c];
      gv[c] = T(2) * gdotn * k.n[c] - gr[c];
      gu[c] = -gv[c];  // v = −u, u = p/|p|
      u[c] = -k.v[c];
    }
    unit_backward<T>(k.position, u, k.sp, gu, gposition);
  }
  unit_backward<T>(k.normal, k.n, k.sn, gn, gnormal);
}

// add a chunk's lane-wise light gradients (lanes in order) to its partial sums
template <class T>
void flush_light(const ShadeArgs& a, const LightGrad<T>& lg, T* gwd, T* gwg) {
  auto lanes = [](const typename Lanes<T>::type& v) {
    T s = 0;
    for (int p = 0; p < kPacket<T>; ++p) s += v[p];
    return s;
  };
  for (int j = 0; j < a.rows; ++j)
    for (int c = 0; c < 3; ++c) gwd[3 * j + c] = lanes(lg.wd[j][c]);
  for (int l = 0; l < a.bands; ++l)
    for (int j = 0; j < a.rows; ++j)
      for (int c = 0; c < 3; ++c) gwg[(int64_t(l) * a.rows + j) * 3 + c] = lanes(lg.wg[l][j][c]);
}

// chunks of covered pixels: [start, end) of the covered list, never across images
std::vector<int64_t> chunk_starts(const ShadeArgs& a) {
  std::vector<int64_t> starts;
  const int64_t hw = int64_t(a.H) * a.W;
  int64_t m = 0;
  while (m < a.covered_count) {
    starts.push_back(m);
    int image = int(a.covered[m] / hw);
    int64_t end = std::min<int64_t>(a.covered_count, m + kChunk);
    int64_t i = m + 1;
    while (i < end && a.covered[i] / hw == image) ++i;
    m = i;
  }
  starts.push_back(a.covered_count);
  return starts;
}

// every nonzero (image b, monomial row j, SH coefficient k of band l) term of the light map
template <class T, class F>
void for_each_light_term(const ShadeArgs& a, F&& term) {
  const T* conv = static_cast<const T*>(a.conv);
  const int K = a.bands * a.bands;
  for (int b = 0; b < a.B; ++b)
    for (int j = 0; j < a.rows; ++j)
      for (int k = 0; k < K; ++k) {
        T cv = conv[j * K + k];
        if (cv != 0) term(b, j, k, int(std::sqrt(double(k)) + 1e-9), cv);
      }
}

// the light on the monomial rows (ShadeArgs::wd, wg), and the adjoint of that map
template <class T>
void light_weights(const ShadeArgs& a, std::vector<T>& wd, std::vector<T>& wg) {
  const T* sh = static_cast<const T*>(a.sh);
  const T* lambert = static_cast<const T*>(a.lambert);
  const int K = a.bands * a.bands;
  wd.assign(size_t(a.B) * a.rows * 3, T(0));
  wg.assign(size_t(a.B) * a.bands * a.rows * 3, T(0));
  for_each_light_term<T>(a, [&](int b, int j, int k, int l, T cv) {
    for (int c = 0; c < 3; ++c) {
      T light = sh[(int64_t(b) * K + k) * 3 + c];
      wd[(int64_t(b) * a.rows + j) * 3 + c] += cv * lambert[l] * light;
      wg[((int64_t(b) * a.bands + l) * a.rows + j) * 3 + c] += cv * light;
    }
  });
}

template <class T>
void light_weights_backward(const ShadeArgs& a, const std::vector<T>& gwd, const std::vector<T>& gwg) {
  const T* lambert = static_cast<const T*>(a.lambert);
  T* gsh = static_cast<T*>(a.grad_sh);
  const int K = a.bands * a.bands;
  for_each_light_term<T>(a, [&](int b, int j, int k, int l, T cv) {
    for (int c = 0; c < 3; ++c)
      gsh[(int64_t(b) * K + k) * 3 + c] += cv * (lambert[l] * gwd[(int64_t(b) * a.rows + j) * 3 + c] +
                                                  gwg[((int64_t(b) * a.bands + l) * a.rows + j) * 3 + c]);
  });
}

// the packet's image's light weights
template <class T>
ShadeArgs for_image(const ShadeArgs& a, int image) {
  ShadeArgs b = a;
  b.wd = static_cast<const T*>(a.wd) + int64_t(image) * a.rows * 3;
  b.wg = static_cast<const T*>(a.wg) + int64_t(image) * a.bands * a.rows * 3;
  return b;
}

template <class T>
void shade_forward(const ShadeArgs& args) {
  using V = typename Packet<T>::V;
  std::vector<T> wd, wg;
  light_weights(args, wd, wg);
  ShadeArgs a = args;
  a.wd = wd.data();
  a.wg = wg.data();
  auto starts = chunk_starts(a);
  T* image = static_cast<T*>(a.image);
  T* depth_image = static_cast<T*>(a.depth_image);
  parallel_for(int64_t(starts.size()) - 1, a.threads, [&](int64_t chunk) {
    std::vector<Surface<T>> local(kPacket<T>);
    Surface<T>* saved = static_cast<Surface<T>*>(a.surfaces);
    auto k = std::make_unique<Packet<T>>();
    V out[3];
    for (int64_t m0 = starts[chunk]; m0 < starts[chunk + 1]; m0 += kPacket<T>) {
      k->count = int(std::min<int64_t>(kPacket<T>, starts[chunk + 1] - m0));
      Surface<T>* s = saved ? saved + m0 : local.data();
      for (int p = 0; p < k->count; ++p) load_surface(a, a.covered[m0 + p], s[p]);
      load_packet(s, *k);
      shade_packet(for_image<T>(a, s[0].image), *k, out);
      for (int p = 0; p < k->count; ++p) {
        int64_t flat = a.covered[m0 + p];
        for (int c = 0; c < 3; ++c) image[4 * flat + c] = out[c][p];
        image[4 * flat + 3] = T(1);
        depth_image[flat] = s[p].bary.depth;
      }
    }
  });
}

template <class T>
void shade_backward(const ShadeArgs& args) {
  std::vector<T> wd, wg;
  light_weights(args, wd, wg);
  ShadeArgs a = args;
  a.wd = wd.data();
  a.wg = wg.data();
  auto starts = chunk_starts(a);
  const int64_t chunks = int64_t(starts.size()) - 1;
  const int64_t M = a.covered_count;
  const int64_t light = int64_t(a.rows) * 3 * (1 + a.bands);
  std::vector<T> partial(chunks * light, T(0));
  std::vector<T> corner(M * 27);         // per pixel and corner: gx, gy, gz, gposition[3], gnormal[3]
  std::vector<T> texel(M * 7);           // per pixel: gradient of the 7 sampled material values
  const bool shadowed = a.shadow.data && a.mode == kFull;
  std::vector<T> texel_shadow(shadowed ? M * 6 : 0);  // per pixel: gradient of the 6 shadow factors
  const T* gimage = static_cast<const T*>(a.grad_image);
  using V = typename Packet<T>::V;
  parallel_for(chunks, a.threads, [&](int64_t chunk) {
    const Surface<T>* saved = static_cast<const Surface<T>*>(a.surfaces);
    auto k = std::make_unique<Packet<T>>();
    auto lg = std::make_unique<LightGrad<T>>();  // zero-initialised
    V out[3], gout[3], gmat[7], gnormal[3], gposition[3];
    const ShadeArgs ai = for_image<T>(a, int(a.covered[starts[chunk]] / (int64_t(a.H) * a.W)));
    for (int64_t m0 = starts[chunk]; m0 < starts[chunk + 1]; m0 += kPacket<T>) {
      k->count = int(std::min<int64_t>(kPacket<T>, starts[chunk + 1] - m0));
      const Surface<T>* s = saved + m0;
      load_packet(s, *k);
      shade_packet(ai, *k, out);
      for (int p = 0; p < kPacket<T>; ++p)
        for (int c = 0; c < 3; ++c) gout[c][p] = p < k->count ? gimage[4 * int64_t(a.covered[m0 + p]) + c] : T(0);
      shade_packet_backward(ai, *k, gout, gmat, gnormal, gposition, *lg);
      for (int p = 0; p < k->count; ++p) {
        const Surface<T>& q = s[p];
        int64_t m = m0 + p;
        // texture lookups → uv
        T guv[2] = {0, 0};
        int offset = 0;
        if (shadowed) {  // material = unshadowed · factor
          for (int c = 0; c < 6; ++c) {
            T g = gmat[c][p];
            gmat[c][p] = g * q.factor[c];
            T gf = g * q.unshadowed[c];
            texel_shadow[m * 6 + c] = gf;
            guv[0] += gf * q.dfac_dx[c] * q.look_shadow.sx;
            guv[1] += gf * q.dfac_dy[c] * q.look_shadow.sy;
          }
        }
        for (int t = 0; t < 3; ++t) {
          int used = a.mode == kFull ? 3 : (a.mode == kAlbedo ? 1 : 0);
          for (int c = 0; c < a.tex[t].channels; ++c) {
            T g = t < used ? gmat[offset + c][p] : T(0);
            texel[m * 7 + offset + c] = g;
            if (t < used) {
              guv[0] += g * q.dmat_dx[offset + c] * q.look[t].sx;
              guv[1] += g * q.dmat_dy[offset + c] * q.look[t].sy;
            }
          }
          offset += a.tex[t].channels;
        }
        // interpolation → barycentric weights and per-corner attributes
        const T* pos = static_cast<const T*>(a.positions);
        const T* nrm = static_cast<const T*>(a.normals);
        const T* uv = static_cast<const T*>(a.uv);
        T gw[3];
        T* cg = corner.data() + m * 27;
        for (int i = 0; i < 3; ++i) {
          int64_t r = q.rows[i], v = r - int64_t(q.image) * a.N;
          gw[i] = guv[0] * uv[2 * v] + guv[1] * uv[2 * v + 1];
          for (int c = 0; c < 3; ++c) {
            gw[i] += gposition[c][p] * pos[3 * r + c] + gnormal[c][p] * nrm[3 * r + c];
            cg[9 * i + 3 + c] = q.bary.w[i] * gposition[c][p];
            cg[9 * i + 6 + c] = q.bary.w[i] * gnormal[c][p];
          }
        }
        T gx[3], gy[3], gz[3];
        q.bary.backward(gw, gx, gy, gz);
        for (int i = 0; i < 3; ++i) { cg[9 * i] = gx[i]; cg[9 * i + 1] = gy[i]; cg[9 * i + 2] = gz[i]; }
      }
    }
    T* gwd = partial.data() + chunk * light;
    flush_light(a, *lg, gwd, gwd + int64_t(a.rows) * 3);
  });
  // fixed-order reductions: light by chunk, vertices and texels by pixel (one thread per output)
  auto reduce_light = [&] {
    std::vector<T> gwd(wd.size(), T(0)), gwg(wg.size(), T(0));
    const int64_t hw = int64_t(a.H) * a.W;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      int image = int(a.covered[starts[chunk]] / hw);
      const T* src = partial.data() + chunk * light;
      T* dd = gwd.data() + int64_t(image) * a.rows * 3;
      for (int64_t i = 0; i < int64_t(a.rows) * 3; ++i) dd[i] += src[i];
      T* dg = gwg.data() + int64_t(image) * a.bands * a.rows * 3;
      for (int64_t i = 0; i < int64_t(a.bands) * a.rows * 3; ++i) dg[i] += src[a.rows * 3 + i];
    }
    light_weights_backward(a, gwd, gwg);
  };
  auto reduce_vertices = [&] {
    T* gp = static_cast<T*>(a.grad_pixels);
    T* gd = static_cast<T*>(a.grad_depth);
    T* gpos = static_cast<T*>(a.grad_positions);
    T* gnrm = static_cast<T*>(a.grad_normals);
    const int64_t hw = int64_t(a.H) * a.W;
    for (int64_t m = 0; m < M; ++m) {
      int64_t flat = a.covered[m];
      int image = int(flat / hw), face = a.face_index[flat];
      const T* cg = corner.data() + m * 27;
      for (int i = 0; i < 3; ++i) {
        int64_t r = int64_t(image) * a.N + a.faces[3 * face + i];
        gp[2 * r] += cg[9 * i];
        gp[2 * r + 1] += cg[9 * i + 1];
        gd[r] += cg[9 * i + 2];
        for (int c = 0; c < 3; ++c) {
          gpos[3 * r + c] += cg[9 * i + 3 + c];
          gnrm[3 * r + c] += cg[9 * i + 6 + c];
        }
      }
    }
  };
  auto reduce_texture = [&](int t) {
    int used = a.mode == kFull ? 3 : (a.mode == kAlbedo ? 1 : 0);  // the mode's maps: the others get zeros
    if (!a.tex[t].grad || t >= used) return;
    int offset = 0;
    for (int u = 0; u < t; ++u) offset += a.tex[u].channels;
    const Surface<T>* saved = static_cast<const Surface<T>*>(a.surfaces);
    for (int64_t m = 0; m < M; ++m) saved[m].look[t].scatter(a.tex[t], texel.data() + m * 7 + offset);
  };
  auto reduce_shadow = [&] {
    if (!shadowed || !a.shadow.grad) return;
    const Surface<T>* saved = static_cast<const Surface<T>*>(a.surfaces);
    for (int64_t m = 0; m < M; ++m) saved[m].look_shadow.scatter(a.shadow, texel_shadow.data() + m * 6);
  };
  // independent outputs: one thread each when threads are allowed (the result is the same)
  if (a.threads > 1) {
    std::thread t1([&] { reduce_texture(0); reduce_shadow(); }), t2([&] { reduce_texture(1); reduce_texture(2); });
    reduce_vertices();
    reduce_light();
    t1.join();
    t2.join();
  } else {
    for (int t = 0; t < 3; ++t) reduce_texture(t);
    reduce_shadow();
    reduce_vertices();
    reduce_light();
  }
}

// barycentric weights [M,3] and depth [M] of the covered pixels (what the pass above uses)
template <class T>
void barycentrics(const ShadeArgs& a, T* weights, T* depth) {
  parallel_for(a.covered_count, a.threads, [&](int64_t m) {
    Bary<T> b;
    int64_t rows[3];
    load_bary(a, a.covered[m], b, rows);
    for (int i = 0; i < 3; ++i) weights[3 * m + i] = b.w[i];
    depth[m] = b.depth;
  });
}

// ---------------------------------------------------------------------------------------
// 3. Antialiasing (see nextface_core/raster.py): blend across silhouette edges.

struct AntialiasArgs {
  int B, N, H, W, F, C;
  const int32_t* face_index;   // [B·H·W]
  const int32_t* faces;        // [F,3]
  const uint8_t* silhouette;   // [B·F] bit i: edge i (opposite vertex i) is a silhouette edge
  const void* depth_image;     // [B·H·W]
  const void* pixels;          // [B·N,2]
  const void* values;          // [B·H·W, C]
  void* out;                   // [B·H·W, C]
  // pairs found by the forward, reused by the backward: capacity 2·B·H·W
  int32_t* pair_inside;
  int32_t* pair_outside;
  int32_t* pair_edge;
  void* pair_t;
  int64_t* pair_count;
  const void* grad_out;        // backward: [B·H·W, C]
  void* grad_values;           // [B·H·W, C]
  void* grad_pixels;           // [B·N,2]
};

template <class T>
struct EdgeFunctions {
  T tx[3], ty[3];
  // w_i(P) = (b_x − a_x)(P_y − a_y) − (b_y − a_y)(P_x − a_x), a = v_{i+1}, b = v_{i+2}
  T eval(int i, T px, T py) const {
    int j = (i + 1) % 3, k = (i + 2) % 3;
    return (tx[k] - tx[j]) * (py - ty[j]) - (ty[k] - ty[j]) * (px - tx[j]);
  }
};

template <class T>
void load_triangle(const AntialiasArgs& a, int image, int face, EdgeFunctions<T>& e, int64_t rows[3]) {
  const T* pixels = static_cast<const T*>(a.pixels);
  for (int i = 0; i < 3; ++i) {
    rows[i] = int64_t(image) * a.N + a.faces[3 * face + i];
    e.tx[i] = pixels[2 * rows[i]];
    e.ty[i] = pixels[2 * rows[i] + 1];
  }
}

template <class T>
void antialias_forward(const AntialiasArgs& a) {
  const T* depth = static_cast<const T*>(a.depth_image);
  const T* val = static_cast<const T*>(a.values);
  T* out = static_cast<T*>(a.out);
  T* pt = static_cast<T*>(a.pair_t);
  const int64_t hw = int64_t(a.H) * a.W, total = a.B * hw;
  std::memcpy(out, val, sizeof(T) * total * a.C);
  int64_t count = 0;
  for (int64_t first = 0; first < total; ++first) {
    int image = int(first / hw), pix = int(first % hw), x = pix % a.W, y = pix / a.W;
    for (int axis = 0; axis < 2; ++axis) {
      if (axis == 0 ? x + 1 >= a.W : y + 1 >= a.H) continue;
      int64_t second = first + (axis == 0 ? 1 : a.W);
      int fp = a.face_index[first], fq = a.face_index[second];
      if (fp == fq) continue;
      bool p_near = fp >= 0 && (fq < 0 || depth[first] <= depth[second]);
      if (!p_near && fq < 0) continue;
      int64_t inside = p_near ? first : second, outside = p_near ? second : first;
      int face = p_near ? fp : fq;
      uint8_t sil = a.silhouette[int64_t(image) * a.F + face];
      if (!sil) continue;
      EdgeFunctions<T> e;
      int64_t rows[3];
      load_triangle(a, image, face, e, rows);
      int ip = int(inside % hw), op = int(outside % hw);
      T ix = T(ip % a.W) + T(0.5), iy = T(ip / a.W) + T(0.5), ox = T(op % a.W) + T(0.5), oy = T(op / a.W) + T(0.5);
      T wa[3], wo[3];
      for (int i = 0; i < 3; ++i) { wa[i] = e.eval(i, ix, iy); wo[i] = e.eval(i, ox, oy); }
      T orient = (wa[0] + wa[1] + wa[2]) > 0 ? T(1) : ((wa[0] + wa[1] + wa[2]) < 0 ? T(-1) : T(0));
      T best = T(2);
      int edge = -1;
      for (int i = 0; i < 3; ++i) {
        int j = (i + 1) % 3, k = (i + 2) % 3;
        bool steep = std::fabs(e.ty[k] - e.ty[j]) >= std::fabs(e.tx[k] - e.tx[j]);
        bool eligible = axis == 0 ? steep : !steep;
        T sa = wa[i] * orient, so = wo[i] * orient;
        if (!((sil >> i) & 1) || !eligible || !(so < 0) || !(sa >= 0)) continue;
        T t = sa / (sa - so);
        if (t < best) { best = t; edge = i; }
      }
      if (edge < 0 || !(best <= T(1))) continue;
      T to_outside = std::max(best - T(0.5), T(0)), to_inside = std::max(T(0.5) - best, T(0));
      for (int c = 0; c < a.C; ++c) {
        T diff = val[inside * a.C + c] - val[outside * a.C + c];
        out[outside * a.C + c] += to_outside * diff;
        out[inside * a.C + c] -= to_inside * diff;
      }
      a.pair_inside[count] = int32_t(inside);
      a.pair_outside[count] = int32_t(outside);
      a.pair_edge[count] = edge;
      pt[count] = best;
      ++count;
    }
  }
  *a.pair_count = count;
}

template <class T>
void antialias_backward(const AntialiasArgs& a) {
  const T* val = static_cast<const T*>(a.values);
  const T* g = static_cast<const T*>(a.grad_out);
  T* gv = static_cast<T*>(a.grad_values);
  T* gp = static_cast<T*>(a.grad_pixels);
  const T* pt = static_cast<const T*>(a.pair_t);
  const int64_t hw = int64_t(a.H) * a.W, total = a.B * hw;
  std::memcpy(gv, g, sizeof(T) * total * a.C);
  for (int64_t n = 0; n < *a.pair_count; ++n) {
    int64_t inside = a.pair_inside[n], outside = a.pair_outside[n];
    int edge = a.pair_edge[n];
    T t = pt[n];
    T to_outside = std::max(t - T(0.5), T(0)), to_inside = std::max(T(0.5) - t, T(0));
    T gt = 0;
    for (int c = 0; c < a.C; ++c) {
      T diff = val[inside * a.C + c] - val[outside * a.C + c];
      T gdiff = to_outside * g[outside * a.C + c] - to_inside * g[inside * a.C + c];
      gv[inside * a.C + c] += gdiff;
      gv[outside * a.C + c] -= gdiff;
      gt += diff * ((t >= T(0.5) ? g[outside * a.C + c] : T(0)) + (t <= T(0.5) ? g[inside * a.C + c] : T(0)));
    }
    int image = int(inside / hw);
    EdgeFunctions<T> e;
    int64_t rows[3];
    load_triangle(a, image, a.face_index[inside], e, rows);
    int ip = int(inside % hw), op = int(outside % hw);
    T px[2] = {T(ip % a.W) + T(0.5), T(op % a.W) + T(0.5)};
    T py[2] = {T(ip / a.W) + T(0.5), T(op / a.W) + T(0.5)};
    T wa[3];
    for (int i = 0; i < 3; ++i) wa[i] = e.eval(i, px[0], py[0]);
    T orient = (wa[0] + wa[1] + wa[2]) > 0 ? T(1) : ((wa[0] + wa[1] + wa[2]) < 0 ? T(-1) : T(0));
    T sa = e.eval(edge, px[0], py[0]) * orient, so = e.eval(edge, px[1], py[1]) * orient;
    T d = sa - so;
    T gw[2] = {gt * -so / (d * d) * orient, gt * sa / (d * d) * orient};  // d t / d (unsigned w) at the two centres
    int j = (edge + 1) % 3, k = (edge + 2) % 3;
    for (int s = 0; s < 2; ++s) {
      gp[2 * rows[j]] += gw[s] * (e.ty[k] - py[s]);
      gp[2 * rows[j] + 1] += gw[s] * (px[s] - e.tx[k]);
      gp[2 * rows[k]] += gw[s] * (py[s] - e.ty[j]);
      gp[2 * rows[k] + 1] += gw[s] * (e.tx[j] - px[s]);
    }
  }
}

}  // namespace

extern "C" {

int nf_abi_version() { return 4; }

void nf_zbuffer_f32(const float* pixels, const float* depth, const int32_t* faces, int B, int N, int F, int H, int W,
                    int threads, int32_t* face_out, float* orient) {
  zbuffer<float>(pixels, depth, faces, B, N, F, H, W, threads, face_out, orient);
}
void nf_zbuffer_f64(const double* pixels, const double* depth, const int32_t* faces, int B, int N, int F, int H, int W,
                    int threads, int32_t* face_out, double* orient) {
  zbuffer<double>(pixels, depth, faces, B, N, F, H, W, threads, face_out, orient);
}
void nf_barycentrics_f32(const ShadeArgs* a, float* w, float* d) { barycentrics<float>(*a, w, d); }
void nf_barycentrics_f64(const ShadeArgs* a, double* w, double* d) { barycentrics<double>(*a, w, d); }
int64_t nf_surface_bytes_f32() { return sizeof(Surface<float>); }
int64_t nf_surface_bytes_f64() { return sizeof(Surface<double>); }
void nf_silhouettes_f32(const float* o, const int64_t* n, int B, int F, uint8_t* bits) { silhouettes<float>(o, n, B, F, bits); }
void nf_silhouettes_f64(const double* o, const int64_t* n, int B, int F, uint8_t* bits) { silhouettes<double>(o, n, B, F, bits); }
void nf_shade_forward_f32(const ShadeArgs* a) { shade_forward<float>(*a); }
void nf_shade_forward_f64(const ShadeArgs* a) { shade_forward<double>(*a); }
void nf_shade_backward_f32(const ShadeArgs* a) { shade_backward<float>(*a); }
void nf_shade_backward_f64(const ShadeArgs* a) { shade_backward<double>(*a); }
void nf_antialias_forward_f32(const AntialiasArgs* a) { antialias_forward<float>(*a); }
void nf_antialias_forward_f64(const AntialiasArgs* a) { antialias_forward<double>(*a); }
void nf_antialias_backward_f32(const AntialiasArgs* a) { antialias_backward<float>(*a); }
void nf_antialias_backward_f64(const AntialiasArgs* a) { antialias_backward<double>(*a); }
}
