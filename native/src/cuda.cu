// CUDA implementation: one thread per output pixel, the same arithmetic as cpu.cpp (common.h).
// Per-image descriptors travel by value in the kernel parameters, in chunks, so a launch needs no
// device allocation and no host synchronization, and the caller's descriptor arrays can be freed
// as soon as the call returns.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common.h"

namespace fl {
namespace {

constexpr int kPreChunk = 64;   // 64 x 24-byte descriptors: well under the 4 KB parameter limit
constexpr int kPostChunk = 16;  // 16 x 80-byte items + the 768-byte colour table
constexpr int kBlockX = 32, kBlockY = 8;
constexpr int kPostRows = 4;

struct PreBatch {
  fl_image images[kPreChunk];
  int32_t first;  // batch index of images[0]
};

struct PostBatch {
  fl_postprocess_item items[kPostChunk];
  alignas(4) uint8_t lut[256 * 3];
  float alpha, beta;  // beta = 1 - alpha, rounded as on the CPU
};

template <bool kHalf>
__global__ void __launch_bounds__(kBlockX* kBlockY)
    preprocess_kernel(const __grid_constant__ PreBatch batch, const fl_preprocess_params p, void* __restrict__ out) {
  const int32_t x = blockIdx.x * blockDim.x + threadIdx.x;
  const int32_t y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= p.out_width || y >= p.out_height) return;
  const fl_image im = batch.images[blockIdx.z];
  const Tap tx = tap(x, im.width, p.out_width);
  const Tap ty = tap(y, im.height, p.out_height);
  const uint8_t* r0 = im.data + ty.i0 * im.pitch;
  const uint8_t* r1 = im.data + ty.i1 * im.pitch;
  const int64_t plane = static_cast<int64_t>(p.out_height) * p.out_width;
  const int64_t base = static_cast<int64_t>(batch.first + blockIdx.z) * 3 * plane + static_cast<int64_t>(y) * p.out_width + x;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    const int ci = p.swap_rb ? 2 - c : c;
    const float h0 = lerp(__ldg(r0 + 3 * tx.i0 + ci), __ldg(r0 + 3 * tx.i1 + ci), tx.w0, tx.w1);
    const float h1 = lerp(__ldg(r1 + 3 * tx.i0 + ci), __ldg(r1 + 3 * tx.i1 + ci), tx.w0, tx.w1);
    const float v = mul(sub(lerp(h0, h1, ty.w0, ty.w1), p.mean255[c]), p.inv_std255[c]);
    if (kHalf)
      static_cast<__half*>(out)[base + c * plane] = __float2half_rn(v);
    else
      static_cast<float*>(out)[base + c * plane] = v;
  }
}

// Each thread does kPostRows output rows of one column (rows blockDim.y apart, so that every warp
// still writes one contiguous row segment): the colour table is staged in shared memory once per
// block, and the column's tap is computed once.
__global__ void __launch_bounds__(kBlockX* kBlockY) postprocess_kernel(const __grid_constant__ PostBatch batch) {
  __shared__ uint32_t lut_words[256 * 3 / 4];
  const fl_postprocess_item& it = batch.items[blockIdx.z];
  const bool overlay = it.overlay_out != nullptr;  // the same for the whole block
  if (overlay) {
    const uint32_t* src = reinterpret_cast<const uint32_t*>(batch.lut);
    for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < 256 * 3 / 4; i += blockDim.x * blockDim.y) lut_words[i] = src[i];
    __syncthreads();
  }
  const uint8_t* lut = reinterpret_cast<const uint8_t*>(lut_words);
  const int32_t x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= it.width) return;
  const Tap tx = tap(x, it.map_width, it.width);
  const int32_t y_first = blockIdx.y * blockDim.y * kPostRows + threadIdx.y;
#pragma unroll
  for (int r = 0; r < kPostRows; ++r) {
    const int32_t y = y_first + r * blockDim.y;
    if (y >= it.height) return;
    const Tap ty = tap(y, it.map_height, it.height);
    const float* m0 = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(it.map) + ty.i0 * it.map_pitch);
    const float* m1 = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(it.map) + ty.i1 * it.map_pitch);
    const float h0 = lerp(__ldg(m0 + tx.i0), __ldg(m0 + tx.i1), tx.w0, tx.w1);
    const float h1 = lerp(__ldg(m1 + tx.i0), __ldg(m1 + tx.i1), tx.w0, tx.w1);
    const float v = lerp(h0, h1, ty.w0, ty.w1);
    if (it.map_out != nullptr)
      reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(it.map_out) + y * it.map_out_pitch)[x] = clip01(v);
    if (overlay) {
      const uint8_t* heat = lut + 3 * level(v);
      const uint8_t* img = it.image + y * it.image_pitch + 3 * x;
      uint8_t* o = it.overlay_out + y * it.overlay_out_pitch + 3 * x;
#pragma unroll
      for (int c = 0; c < 3; ++c) o[c] = blend(heat[c], __ldg(img + c), batch.alpha, batch.beta);
    }
  }
}

int32_t cuda_fail(const char* what, cudaError_t err) {
  return fail(FL_ERR_CUDA, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

unsigned blocks(int32_t n, int32_t per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

}  // namespace
}  // namespace fl

extern "C" {

FL_API int32_t fl_cuda_device_count(int32_t* count) {
  fl::clear_error();
  if (count == nullptr) return fl::fail(FL_ERR_INVALID_ARGUMENT, "cuda_device_count: null output");
  int c = 0;
  const cudaError_t err = cudaGetDeviceCount(&c);
  *count = err == cudaSuccess ? c : 0;
  return err == cudaSuccess ? FL_OK : fl::cuda_fail("cudaGetDeviceCount", err);
}

FL_API int32_t fl_preprocess_cuda(const fl_image* images, int32_t n, const fl_preprocess_params* params, void* out,
                                  void* stream) {
  fl::clear_error();
  if (int32_t s = fl::check_preprocess(images, n, params, out)) return s;
  cudaGetLastError();  // an earlier failure in this thread is not ours to report
  const dim3 block(fl::kBlockX, fl::kBlockY);
  for (int32_t first = 0; first < n; first += fl::kPreChunk) {
    fl::PreBatch batch;
    const int32_t count = std::min(n - first, fl::kPreChunk);
    std::copy(images + first, images + first + count, batch.images);
    batch.first = first;
    const dim3 grid(fl::blocks(params->out_width, fl::kBlockX), fl::blocks(params->out_height, fl::kBlockY), count);
    auto s = static_cast<cudaStream_t>(stream);
    if (params->out_dtype == FL_FLOAT16)
      fl::preprocess_kernel<true><<<grid, block, 0, s>>>(batch, *params, out);
    else
      fl::preprocess_kernel<false><<<grid, block, 0, s>>>(batch, *params, out);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return fl::cuda_fail("preprocess kernel launch", err);
  }
  return FL_OK;
}

FL_API int32_t fl_postprocess_cuda(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, float alpha,
                                   void* stream) {
  fl::clear_error();
  if (int32_t s = fl::check_postprocess(items, n, lut, alpha)) return s;
  cudaGetLastError();
  const dim3 block(fl::kBlockX, fl::kBlockY);
  for (int32_t first = 0; first < n; first += fl::kPostChunk) {
    fl::PostBatch batch;
    const int32_t count = std::min(n - first, fl::kPostChunk);
    std::copy(items + first, items + first + count, batch.items);
    int32_t max_h = 1, max_w = 1;
    for (int32_t k = 0; k < count; ++k) {
      max_h = std::max(max_h, batch.items[k].height);
      max_w = std::max(max_w, batch.items[k].width);
    }
    if (lut != nullptr) std::copy(lut, lut + 256 * 3, batch.lut);
    batch.alpha = alpha;
    batch.beta = fl::sub(1.0f, alpha);
    const dim3 grid(fl::blocks(max_w, fl::kBlockX), fl::blocks(max_h, fl::kBlockY * fl::kPostRows), count);
    fl::postprocess_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(batch);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return fl::cuda_fail("postprocess kernel launch", err);
  }
  return FL_OK;
}

}  // extern "C"
