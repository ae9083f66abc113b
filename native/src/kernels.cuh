// The CUDA kernels, and how a call is split into launches: shared by cuda.cu (real launches) and
// emulate.cpp (the same kernels run on the CPU to test them where there is no GPU). Includers
// provide dim3, __half and __float2half_rn (cuda_runtime.h and cuda_fp16.h, or emulate.cpp's
// stand-ins) first.
//
// One thread per output pixel (postprocess: per kPostRows pixels of a column), the same arithmetic
// as cpu.cpp (common.h). Per-image descriptors travel by value in the kernel parameters, in
// chunks, so a launch needs no device allocation and no host synchronization, and the caller's
// descriptor arrays can be freed as soon as the call returns.
#pragma once

#include <algorithm>

#include "common.h"

namespace fl {
namespace kernels {

constexpr int kPreChunk = 64;   // 64 x 24-byte descriptors: well under the 4 KB parameter limit
constexpr int kPostChunk = 16;  // 16 x 96-byte items + the 768-byte colour table + 1 KB of opacities: 3.3 KB of the 4 KB
constexpr int kBlockX = 32, kBlockY = 8;
// Output rows per postprocess thread. Staging the colour and opacity tables costs each block 448
// serialized reads of the parameter space (divergent addresses in the constant cache), so blocks
// are made tall: a 32 x 128 tile amortizes it to about a ninth of a read per output pixel.
constexpr int kPostRows = 16;

struct PreBatch {
  fl_image images[kPreChunk];
  int32_t first;  // batch index of images[0]
};

struct PostBatch {
  fl_postprocess_item items[kPostChunk];
  alignas(4) uint8_t lut[256 * 3];
  float alpha[256];  // opacity per map level
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
  __shared__ float alpha[256], beta[256];
  const fl_postprocess_item& it = batch.items[blockIdx.z];
  const bool overlay = it.overlay_out != nullptr;  // the same for the whole block
  if (overlay) {
    const uint32_t* src = reinterpret_cast<const uint32_t*>(batch.lut);
    for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < 256 * 3 / 4; i += blockDim.x * blockDim.y) lut_words[i] = src[i];
    for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < 256; i += blockDim.x * blockDim.y) {
      alpha[i] = batch.alpha[i];
      beta[i] = sub(1.0f, alpha[i]);  // rounded as on the CPU
    }
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
    if (it.levels_out != nullptr) it.levels_out[y * it.levels_out_pitch + x] = static_cast<uint8_t>(level(v));
    if (overlay) {
      const int32_t l = level(v);
      const uint8_t* heat = lut + 3 * l;
      const uint8_t* img = it.image + y * it.image_pitch + 3 * x;
      uint8_t* o = it.overlay_out + y * it.overlay_out_pitch + 3 * x;
#pragma unroll
      for (int c = 0; c < 3; ++c) o[c] = blend(heat[c], __ldg(img + c), alpha[l], beta[l]);
    }
  }
}

// ---- native analysis: tiles and stitching ------------------------------------------------------

constexpr int kTileChunk = 64;    // 64 x 40-byte tile descriptors + the 40-byte params: 2.6 KB
constexpr int kStitchChunk = 16;  // 16 x 72-byte items
// Output rows per stitch thread: a thread's column weights (float64 arithmetic) are computed once
// for all of them.
constexpr int kStitchRows = 16;

struct TileDesc {
  const uint8_t* data;
  int64_t pitch;
  int32_t height, width;  // the image's
  int32_t y0, x0;         // the tile's top-left corner in it
  int64_t index;          // batch index of the tile
};

struct TileBatch {
  TileDesc tiles[kTileChunk];
};

struct StitchBatch {
  fl_stitch_item items[kStitchChunk];
};

// One thread per tile pixel (all three channels); tiles in blockIdx.z. Pixels beyond the image
// mirror it, as on the CPU.
template <bool kHalf>
__global__ void __launch_bounds__(kBlockX* kBlockY)
    tiles_kernel(const __grid_constant__ TileBatch batch, const fl_preprocess_params p, void* __restrict__ out) {
  const int32_t x = blockIdx.x * blockDim.x + threadIdx.x;
  const int32_t y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= p.out_width || y >= p.out_height) return;
  const TileDesc t = batch.tiles[blockIdx.z];
  const uint8_t* src = t.data + static_cast<int64_t>(mirror(t.y0 + y, t.height)) * t.pitch + 3 * mirror(t.x0 + x, t.width);
  const int64_t plane = static_cast<int64_t>(p.out_height) * p.out_width;
  const int64_t base = t.index * 3 * plane + static_cast<int64_t>(y) * p.out_width + x;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    const int ci = p.swap_rb ? 2 - c : c;
    const float v = mul(sub(static_cast<float>(__ldg(src + ci)), p.mean255[c]), p.inv_std255[c]);
    if (kHalf)
      static_cast<__half*>(out)[base + c * plane] = __float2half_rn(v);
    else
      static_cast<float*>(out)[base + c * plane] = v;
  }
}

// Each thread does kStitchRows output rows of one column (rows blockDim.y apart, so a warp writes
// one contiguous row segment); items in blockIdx.z. The tiles covering the column and their
// weights are computed once; per row, those covering the row. Per pixel the sum runs over the
// covering tiles in row-major tile order, as on the CPU and in the reference.
__global__ void __launch_bounds__(kBlockX* kBlockY) stitch_kernel(const __grid_constant__ StitchBatch batch) {
  const fl_stitch_item& it = batch.items[blockIdx.z];
  const int32_t x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= it.width) return;
  const int32_t ny = axis_tiles(it.height, it.tile_h, it.overlap), nx = axis_tiles(it.width, it.tile_w, it.overlap);
  // The covering tiles' arrays are indexed only in fully unrolled loops: they live in registers.
  float wx[kMaxCover], wy[kMaxCover];
  int32_t lx[kMaxCover];
  const Cover cx = axis_weights_at(x, nx, it.width, it.tile_w, it.overlap, wx);
#pragma unroll
  for (int32_t j = 0; j < kMaxCover; ++j) lx[j] = j < cx.count ? x - axis_start(cx.first + j, nx, it.width, it.tile_w) : 0;
  const uint8_t* maps = reinterpret_cast<const uint8_t*>(it.maps);
  const int32_t y_first = blockIdx.y * blockDim.y * kStitchRows + threadIdx.y;
  for (int r = 0; r < kStitchRows; ++r) {
    const int32_t y = y_first + r * blockDim.y;
    if (y >= it.height) return;
    const Cover cy = axis_weights_at(y, ny, it.height, it.tile_h, it.overlap, wy);
    float acc = 0.0f;
#pragma unroll
    for (int32_t i = 0; i < kMaxCover; ++i) {
      if (i >= cy.count) break;
      const int32_t ty = cy.first + i;
      const int64_t ly = y - axis_start(ty, ny, it.height, it.tile_h);
#pragma unroll
      for (int32_t j = 0; j < kMaxCover; ++j) {
        if (j >= cx.count) break;
        const int64_t tile = static_cast<int64_t>(ty) * nx + cx.first + j;
        const float m = __ldg(reinterpret_cast<const float*>(maps + tile * it.tile_stride + ly * it.map_pitch) + lx[j]);
        acc = add(acc, mul(mul(m, wy[i]), wx[j]));
      }
    }
    uint8_t* row = static_cast<uint8_t*>(it.out) + static_cast<int64_t>(y) * it.out_pitch;
    if (it.out_dtype == FL_UINT8)
      row[x] = static_cast<uint8_t>(level(acc));
    else
      reinterpret_cast<float*>(row)[x] = clip01(acc);
  }
}

inline unsigned blocks(int32_t n, int32_t per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

// Splits a preprocess call into launches of at most kPreChunk images: launch(grid, block, batch)
// starts one and returns FL_OK or an error code.
template <class Launch>
int32_t preprocess_launches(const fl_image* images, int32_t n, const fl_preprocess_params& p, Launch launch) {
  const dim3 block(kBlockX, kBlockY);
  for (int32_t first = 0; first < n; first += kPreChunk) {
    PreBatch batch;
    const int32_t count = std::min(n - first, kPreChunk);
    std::copy(images + first, images + first + count, batch.images);
    batch.first = first;
    const dim3 grid(blocks(p.out_width, kBlockX), blocks(p.out_height, kBlockY), count);
    if (int32_t s = launch(grid, block, batch)) return s;
  }
  return FL_OK;
}

// Splits a postprocess call into launches of at most kPostChunk maps, each grid sized for the
// largest output of its chunk.
template <class Launch>
int32_t postprocess_launches(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity, Launch launch) {
  const dim3 block(kBlockX, kBlockY);
  for (int32_t first = 0; first < n; first += kPostChunk) {
    PostBatch batch;
    const int32_t count = std::min(n - first, kPostChunk);
    std::copy(items + first, items + first + count, batch.items);
    int32_t max_h = 1, max_w = 1;
    for (int32_t k = 0; k < count; ++k) {
      max_h = std::max(max_h, batch.items[k].height);
      max_w = std::max(max_w, batch.items[k].width);
    }
    if (lut != nullptr) std::copy(lut, lut + 256 * 3, batch.lut);
    for (int32_t l = 0; l < 256; ++l) batch.alpha[l] = opacity != nullptr ? opacity[l] : 0.0f;
    const dim3 grid(blocks(max_w, kBlockX), blocks(max_h, kBlockY * kPostRows), count);
    if (int32_t s = launch(grid, block, batch)) return s;
  }
  return FL_OK;
}

// Splits a tiles call into launches of at most kTileChunk tiles (the images' tiles in layout order).
template <class Launch>
int32_t tiles_launches(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params& p, Launch launch) {
  const dim3 block(kBlockX, kBlockY);
  TileBatch batch;
  int32_t count = 0;
  auto flush = [&]() -> int32_t {
    if (count == 0) return FL_OK;
    const dim3 grid(blocks(p.out_width, kBlockX), blocks(p.out_height, kBlockY), count);
    count = 0;
    return launch(grid, block, batch);
  };
  for (int32_t k = 0; k < n; ++k) {
    const fl_image& im = items[k].image;
    const TileRect r = tile_rect(items[k], p.out_height, p.out_width, overlap);
    int64_t index = items[k].first;
    for (int32_t i = r.row0; i < r.row_end; ++i)
      for (int32_t j = r.col0; j < r.col_end; ++j) {
        batch.tiles[count++] = TileDesc{im.data, im.pitch, im.height, im.width, axis_start(i, r.ny, im.height, p.out_height),
                                        axis_start(j, r.nx, im.width, p.out_width), index++};
        if (count == kTileChunk)
          if (int32_t s = flush()) return s;
      }
  }
  return flush();
}

// Splits a stitch call into launches of at most kStitchChunk items, each grid sized for the
// largest image of its chunk.
template <class Launch>
int32_t stitch_launches(const fl_stitch_item* items, int32_t n, Launch launch) {
  const dim3 block(kBlockX, kBlockY);
  for (int32_t first = 0; first < n; first += kStitchChunk) {
    StitchBatch batch;
    const int32_t count = std::min(n - first, kStitchChunk);
    std::copy(items + first, items + first + count, batch.items);
    int32_t max_h = 1, max_w = 1;
    for (int32_t k = 0; k < count; ++k) {
      max_h = std::max(max_h, batch.items[k].height);
      max_w = std::max(max_w, batch.items[k].width);
    }
    const dim3 grid(blocks(max_w, kBlockX), blocks(max_h, kBlockY * kStitchRows), count);
    if (int32_t s = launch(grid, block, batch)) return s;
  }
  return FL_OK;
}

}  // namespace kernels
}  // namespace fl
