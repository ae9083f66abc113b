// The CUDA kernels of kernels.cuh run on the CPU, to test them (their indexing, the launch
// splitting, the descriptors built by Python) on machines without a GPU. Built only with
// -DFAKELOCATOR_EMULATED_CUDA=ON, into a separate test library whose fl_*_cuda entry points take
// host pointers. Each block's threads are fibers (ucontext) on the calling thread, switched at
// __syncthreads(), so barrier semantics hold; nothing here is fast, and none of it says anything
// about real GPUs' memory model or speed.
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace emu {

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

dim3 block_idx, thread_idx, block_dim, grid_dim;

ucontext_t scheduler;
std::vector<ucontext_t> fibers;
size_t current = 0;

void syncthreads() { swapcontext(&fibers[current], &scheduler); }

template <class T>
T ldg(const T* p) {
  return *p;
}

// Runs body() as every thread of every block of `grid`, blocks one after the other.
void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  constexpr size_t kStack = 64 * 1024;
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  std::vector<std::vector<char>> stacks(threads, std::vector<char>(kStack));
  std::vector<char> done(threads);
  fibers.assign(threads, ucontext_t{});
  static const std::function<void()>* run;
  static char* finished;
  run = &body;
  grid_dim = grid;
  block_dim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        block_idx = dim3(bx, by, bz);
        for (size_t t = 0; t < threads; ++t) {
          getcontext(&fibers[t]);
          fibers[t].uc_stack.ss_sp = stacks[t].data();
          fibers[t].uc_stack.ss_size = kStack;
          fibers[t].uc_link = &scheduler;
          done[t] = 0;
          makecontext(&fibers[t], [] {
            (*run)();
            finished[current] = 1;
          }, 0);
        }
        finished = done.data();
        // Each round runs every unfinished thread up to its next barrier (or its end).
        for (bool any = true; any;) {
          any = false;
          for (size_t t = 0; t < threads; ++t) {
            if (done[t]) continue;
            any = true;
            current = t;
            thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            swapcontext(&scheduler, &fibers[t]);
          }
        }
      }
}

}  // namespace emu

namespace emu {

// float -> IEEE binary16 bits, rounding to nearest even: written independently of cpu.cpp's bit
// trick (in double arithmetic, with nearbyint), so that the tests compare two implementations.
uint16_t half_bits(float value) {
  if (std::isnan(value)) return 0x7e00;
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(value));
  if (a == 0.0) return sign;
  if (a >= 65520.0) return sign | 0x7c00;  // rounds beyond the largest half, 65504
  int e = 0;
  std::frexp(a, &e);                  // a = m * 2^e, m in [0.5, 1)
  int exponent = std::max(e - 1, -14);  // of the half's binade; -14 and below: subnormals
  double q = std::nearbyint(a / std::ldexp(1.0, exponent - 10));  // a in units of the half's ulp
  if (q >= 2048.0) {  // rounded up into the next binade
    q /= 2.0;
    exponent += 1;
  }
  if (q < 1024.0) return sign | static_cast<uint16_t>(q);  // subnormal (exponent is -14)
  return sign | static_cast<uint16_t>(((exponent + 15) << 10) | (static_cast<int>(q) - 1024));
}

}  // namespace emu

using dim3 = emu::dim3;
using __half = uint16_t;
inline uint16_t __float2half_rn(float v) { return emu::half_bits(v); }
#define __global__
#define __launch_bounds__(n)
#define __grid_constant__
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads emu::syncthreads
#define __ldg emu::ldg
#define blockIdx emu::block_idx
#define threadIdx emu::thread_idx
#define blockDim emu::block_dim

#include "kernels.cuh"

extern "C" {

FL_API int32_t fl_cuda_device_count(int32_t* count) {
  if (count == nullptr) return fl::fail(FL_ERR_INVALID_ARGUMENT, "cuda_device_count: null output");
  *count = 1;  // the emulated one
  return FL_OK;
}

FL_API int32_t fl_preprocess_cuda(const fl_image* images, int32_t n, const fl_preprocess_params* params, void* out,
                                  void*) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_preprocess(images, n, params, out)) return s;
  return preprocess_launches(images, n, *params, [&](dim3 grid, dim3 block, const PreBatch& batch) {
    emu::launch(grid, block, [&] {
      if (params->out_dtype == FL_FLOAT16)
        preprocess_kernel<true>(batch, *params, out);
      else
        preprocess_kernel<false>(batch, *params, out);
    });
    return FL_OK;
  });
}

FL_API int32_t fl_postprocess_cuda(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity,
                                   void*) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_postprocess(items, n, lut, opacity)) return s;
  return postprocess_launches(items, n, lut, opacity, [&](dim3 grid, dim3 block, const PostBatch& batch) {
    emu::launch(grid, block, [&] { postprocess_kernel(batch); });
    return FL_OK;
  });
}

FL_API int32_t fl_tiles_cuda(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params,
                             void* out, void*) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_tiles(items, n, overlap, params, out)) return s;
  return tiles_launches(items, n, overlap, *params, [&](dim3 grid, dim3 block, const TileBatch& batch) {
    emu::launch(grid, block, [&] {
      if (params->out_dtype == FL_FLOAT16)
        tiles_kernel<true>(batch, *params, out);
      else
        tiles_kernel<false>(batch, *params, out);
    });
    return FL_OK;
  });
}

FL_API int32_t fl_stitch_cuda(const fl_stitch_item* items, int32_t n, void*) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_stitch(items, n)) return s;
  return stitch_launches(items, n, [&](dim3 grid, dim3 block, const StitchBatch& batch) {
    emu::launch(grid, block, [&] { stitch_kernel(batch); });
    return FL_OK;
  });
}

}  // extern "C"
