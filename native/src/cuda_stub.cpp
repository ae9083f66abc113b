// The CUDA entry points of a library built without nvcc: they say so.
#include "common.h"

namespace {
int32_t no_cuda(const char* what) {
  return fl::fail(FL_ERR_NO_CUDA_SUPPORT, std::string(what) +
                                              ": this fakelocator native library was built without CUDA "
                                              "(nvcc was not found when CMake configured it)");
}
}  // namespace

extern "C" {

FL_API int32_t fl_cuda_device_count(int32_t* count) {
  if (count != nullptr) *count = 0;
  return no_cuda("cuda_device_count");
}

FL_API int32_t fl_preprocess_cuda(const fl_image*, int32_t, const fl_preprocess_params*, void*, void*) {
  return no_cuda("preprocess_cuda");
}

FL_API int32_t fl_postprocess_cuda(const fl_postprocess_item*, int32_t, const uint8_t*, const float*, void*) {
  return no_cuda("postprocess_cuda");
}

FL_API int32_t fl_tiles_cuda(const fl_tile_item*, int32_t, int32_t, const fl_preprocess_params*, void*, void*) {
  return no_cuda("tiles_cuda");
}

FL_API int32_t fl_stitch_cuda(const fl_stitch_item*, int32_t, void*) { return no_cuda("stitch_cuda"); }

}  // extern "C"
