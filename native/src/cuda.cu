// CUDA implementation: the kernels of kernels.cuh launched on the caller's stream.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels.cuh"

namespace {

int32_t cuda_fail(const char* what, cudaError_t err) {
  return fl::fail(FL_ERR_CUDA, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

int32_t launched(const char* what) {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? FL_OK : cuda_fail(what, err);
}

}  // namespace

extern "C" {

FL_API int32_t fl_cuda_device_count(int32_t* count) {
  fl::clear_error();
  if (count == nullptr) return fl::fail(FL_ERR_INVALID_ARGUMENT, "cuda_device_count: null output");
  int c = 0;
  const cudaError_t err = cudaGetDeviceCount(&c);
  *count = err == cudaSuccess ? c : 0;
  return err == cudaSuccess ? FL_OK : cuda_fail("cudaGetDeviceCount", err);
}

FL_API int32_t fl_preprocess_cuda(const fl_image* images, int32_t n, const fl_preprocess_params* params, void* out,
                                  void* stream) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_preprocess(images, n, params, out)) return s;
  cudaGetLastError();  // an earlier failure in this thread is not ours to report
  const auto s = static_cast<cudaStream_t>(stream);
  return preprocess_launches(images, n, *params, [&](dim3 grid, dim3 block, const PreBatch& batch) {
    if (params->out_dtype == FL_FLOAT16)
      preprocess_kernel<true><<<grid, block, 0, s>>>(batch, *params, out);
    else
      preprocess_kernel<false><<<grid, block, 0, s>>>(batch, *params, out);
    return launched("preprocess kernel launch");
  });
}

FL_API int32_t fl_postprocess_cuda(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity,
                                   void* stream) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_postprocess(items, n, lut, opacity)) return s;
  cudaGetLastError();
  const auto s = static_cast<cudaStream_t>(stream);
  return postprocess_launches(items, n, lut, opacity, [&](dim3 grid, dim3 block, const PostBatch& batch) {
    postprocess_kernel<<<grid, block, 0, s>>>(batch);
    return launched("postprocess kernel launch");
  });
}

FL_API int32_t fl_tiles_cuda(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params,
                             void* out, void* stream) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_tiles(items, n, overlap, params, out)) return s;
  cudaGetLastError();
  const auto s = static_cast<cudaStream_t>(stream);
  return tiles_launches(items, n, overlap, *params, [&](dim3 grid, dim3 block, const TileBatch& batch) {
    if (params->out_dtype == FL_FLOAT16)
      tiles_kernel<true><<<grid, block, 0, s>>>(batch, *params, out);
    else
      tiles_kernel<false><<<grid, block, 0, s>>>(batch, *params, out);
    return launched("tiles kernel launch");
  });
}

FL_API int32_t fl_stitch_cuda(const fl_stitch_item* items, int32_t n, void* stream) {
  using namespace fl::kernels;
  fl::clear_error();
  if (int32_t s = fl::check_stitch(items, n)) return s;
  cudaGetLastError();
  const auto s = static_cast<cudaStream_t>(stream);
  return stitch_launches(items, n, [&](dim3 grid, dim3 block, const StitchBatch& batch) {
    stitch_kernel<<<grid, block, 0, s>>>(batch);
    return launched("stitch kernel launch");
  });
}

}  // extern "C"
