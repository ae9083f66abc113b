// Shared by the CPU and CUDA implementations: the exact resize/normalize/overlay arithmetic,
// written once so that both produce the same bits, plus argument checking and error reporting.
#pragma once

#include <stdint.h>

#include <string>

#include "fakelocator_native.h"

#if defined(__CUDACC__)
#define FL_HD __host__ __device__ __forceinline__
#else
#define FL_HD inline
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

// Argument checks shared by the CPU and CUDA entry points; they set the last error.
int32_t check_preprocess(const fl_image* images, int32_t n, const fl_preprocess_params* params, const void* out);
int32_t check_postprocess(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity);

// Records `message` as the calling thread's last error and returns `code`.
int32_t fail(int32_t code, const std::string& message);
void clear_error();

}  // namespace fl
