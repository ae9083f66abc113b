// Shared by the CPU and CUDA implementations: the exact resize/normalize/overlay arithmetic,
// written once so that both produce the same bits, plus argument checking and error reporting.
#pragma once

#include <stdint.h>

#include <string>

#include "fakelocator_native.h"

#if defined(__CUDACC__)
#define FL_HD __host__ __device__ __forceinline__
#define FL_UNROLL _Pragma("unroll")
#else
#define FL_HD inline
#define FL_UNROLL
#endif

namespace fl {

// Round-to-nearest float operations that are never fused into an FMA: nvcc contracts a * b + c
// by default, so the device side spells the rounding out; the host side is built with
// -ffp-contract=off (CMakeLists.txt) and never uses FMA.
FL_HD float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FL_HD float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FL_HD float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FL_HD float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// The two source samples behind one destination sample, and their weights.
struct Tap {
  int32_t i0, i1;
  float w0, w1;
};

// Bilinear tap for destination index `dst` when resizing `in` samples to `out` samples, half-pixel
// centres, clamped at the edges. The source coordinate (dst + 0.5) * in / out - 0.5 equals
// ((2 dst + 1) in - out) / (2 out): its integer part and remainder are exact, so the only rounding
// is of the fraction to float32 (OpenCV's generic path rounds the whole coordinate to float32 and
// loses up to 1e-4 of a pixel on 1080p rows). Needs in, out <= FL_MAX_SIDE to stay in int32.
FL_HD Tap tap(int32_t dst, int32_t in, int32_t out) {
  const int32_t num = (2 * dst + 1) * in - out;
  const int32_t den = 2 * out;
  Tap t;
  int32_t rem = 0;
  if (num <= 0) {
    t.i0 = 0;
  } else {
    t.i0 = num / den;
    rem = num - t.i0 * den;
    if (t.i0 >= in - 1) {
      t.i0 = in - 1;
      rem = 0;
    }
  }
  t.i1 = t.i0 + 1 < in ? t.i0 + 1 : in - 1;
  t.w1 = div(static_cast<float>(rem), static_cast<float>(den));
  t.w0 = sub(1.0f, t.w1);
  return t;
}

FL_HD float lerp(float a, float b, float w0, float w1) { return add(mul(a, w0), mul(b, w1)); }

// Clip to [0, 1]; NaN stays NaN, as numpy's clip does.
FL_HD float clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

// floor(clip(v, 0, 1) * 255 + 0.5); NaN gives 0.
FL_HD int32_t level(float v) {
  v = v > 0.0f ? v : 0.0f;
  v = v < 1.0f ? v : 1.0f;
  return static_cast<int32_t>(add(mul(v, 255.0f), 0.5f));  // >= 0.5, so truncation is floor
}

// floor(alpha * heat + (1 - alpha) * image + 0.5), with one_minus_alpha = sub(1, alpha); alpha is
// the opacity table's entry for the pixel's level.
FL_HD uint8_t blend(int32_t heat, int32_t image, float alpha, float one_minus_alpha) {
  const float v = add(add(mul(alpha, static_cast<float>(heat)), mul(one_minus_alpha, static_cast<float>(image))), 0.5f);
  const int32_t i = static_cast<int32_t>(v);  // v >= 0.5: truncation is floor
  return static_cast<uint8_t>(i > 255 ? 255 : i);
}

// ---- native analysis (fakelocator/tiling.py is the reference) --------------------------------

// float64 division, correctly rounded and never fused (the device's `/` on doubles already is).
FL_HD double ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Tiles along an axis of `length` pixels: 1 when it fits one tile, else ceil((L - t) / (t - o)) + 1.
FL_HD int32_t axis_tiles(int32_t length, int32_t tile, int32_t overlap) {
  if (length <= tile) return 1;
  const int32_t step = tile - overlap;
  return (length - tile + step - 1) / step + 1;
}

// Start of tile i of n: Python's round(i * (L - t) / (n - 1)) (half to even), exactly in integers.
// (The reference's float64 quotient is never within 1e-11 of a .5 it is not exactly on, so the
// integer rounding is the same.)
FL_HD int32_t axis_start(int32_t i, int32_t n, int32_t length, int32_t tile) {
  if (n <= 1) return 0;
  const int64_t num = static_cast<int64_t>(i) * (length - tile), den = n - 1;
  int64_t q = num / den;
  const int64_t r2 = 2 * (num - q * den);
  if (r2 > den || (r2 == den && (q & 1))) ++q;
  return static_cast<int32_t>(q);
}

// The smallest i in [0, n] whose start is >= v (starts never decrease). The estimate
// ceil(v (n - 1) / (L - t)) is off by at most one tile (starts are rounded by at most 0.5).
FL_HD int32_t axis_lower_bound(int32_t v, int32_t n, int32_t length, int32_t tile) {
  if (v <= 0) return 0;
  if (n <= 1) return 1;
  const int64_t span = length - tile;
  int64_t i = (static_cast<int64_t>(v) * (n - 1) + span - 1) / span;
  if (i > n) i = n;
  while (i > 0 && axis_start(static_cast<int32_t>(i - 1), n, length, tile) >= v) --i;
  while (i < n && axis_start(static_cast<int32_t>(i), n, length, tile) < v) ++i;
  return static_cast<int32_t>(i);
}

// The tiles covering pixel p of the axis: [first, first + count), ascending.
struct Cover {
  int32_t first, count;
};
FL_HD Cover axis_cover(int32_t p, int32_t n, int32_t length, int32_t tile) {
  const int32_t a = axis_lower_bound(p - tile + 1, n, length, tile);
  const int32_t b = axis_lower_bound(p + 1, n, length, tile);
  return Cover{a, b - a};
}

// The linear window's raw weight at a tile's local index i, in float64:
// min(1, (i + 0.5) / overlap, (tile - i - 0.5) / overlap); 1 without overlap.
FL_HD double raw_window(int32_t i, int32_t tile, int32_t overlap) {
  if (overlap == 0) return 1.0;
  const double a = ddiv(static_cast<double>(i) + 0.5, static_cast<double>(overlap));
  const double b = ddiv(static_cast<double>(tile) - static_cast<double>(i) - 0.5, static_cast<double>(overlap));
  const double m = a < b ? a : b;
  return m < 1.0 ? m : 1.0;
}

// At most this many tiles cover a pixel along an axis when 2 * overlap < tile (checked): their
// starts are more than tile / 4 apart.
constexpr int32_t kMaxCover = 4;

// The tiles covering pixel p and their normalized float32 weights there (w[0 .. count)): each
// raw weight over the sum of the covering tiles' raw weights, summed in ascending tile order from 0.
FL_HD Cover axis_weights_at(int32_t p, int32_t n, int32_t length, int32_t tile, int32_t overlap, float* w) {
  const Cover cover = axis_cover(p, n, length, tile);
  double raw[kMaxCover];
  double total = 0.0;
  // Fixed trip counts (fully unrolled on the GPU), so that raw[] and w[] stay in registers.
  FL_UNROLL
  for (int32_t j = 0; j < kMaxCover; ++j) {
    raw[j] = j < cover.count ? raw_window(p - axis_start(cover.first + j, n, length, tile), tile, overlap) : 0.0;
    if (j < cover.count) total = total + raw[j];
  }
  FL_UNROLL
  for (int32_t j = 0; j < kMaxCover; ++j) w[j] = j < cover.count ? static_cast<float>(ddiv(raw[j], total)) : 0.0f;
  return cover;
}

// The rectangle of an fl_tile_item's layout to write: [row0, row_end) x [col0, col_end).
struct TileRect {
  int32_t ny, nx, row0, row_end, col0, col_end;
};
FL_HD TileRect tile_rect(const fl_tile_item& it, int32_t tile_h, int32_t tile_w, int32_t overlap) {
  TileRect r;
  r.ny = axis_tiles(it.image.height, tile_h, overlap);
  r.nx = axis_tiles(it.image.width, tile_w, overlap);
  r.row0 = it.row0;
  r.row_end = it.rows > 0 ? it.row0 + it.rows : r.ny;
  r.col0 = it.col0;
  r.col_end = it.cols > 0 ? it.col0 + it.cols : r.nx;
  return r;
}

// Pixel p of an axis of `length` pixels extended by mirroring (numpy's "symmetric": abc|cba|abc).
FL_HD int32_t mirror(int32_t p, int32_t length) {
  if (p < length) return p;
  const int32_t period = 2 * length;
  const int32_t q = p % period;
  return q < length ? q : period - 1 - q;
}

// Argument checks shared by the CPU and CUDA entry points; they set the last error.
int32_t check_preprocess(const fl_image* images, int32_t n, const fl_preprocess_params* params, const void* out);
int32_t check_postprocess(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity);
int32_t check_tiles(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params, const void* out);
int32_t check_stitch(const fl_stitch_item* items, int32_t n);

// Records `message` as the calling thread's last error and returns `code`.
int32_t fail(int32_t code, const std::string& message);
void clear_error();

}  // namespace fl
