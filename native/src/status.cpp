// Error reporting, version queries and the argument checks shared by both implementations.
#include <cmath>
#include <string>

#include "common.h"

namespace fl {

namespace {
thread_local std::string last_error;

std::string where(const char* what, int32_t k) { return std::string(what) + " " + std::to_string(k) + ": "; }

bool side_ok(int32_t v) { return v >= 1 && v <= FL_MAX_SIDE; }
}  // namespace

int32_t fail(int32_t code, const std::string& message) {
  last_error = message;
  return code;
}

void clear_error() { last_error.clear(); }

int32_t check_preprocess(const fl_image* images, int32_t n, const fl_preprocess_params* p, const void* out) {
  if (n < 0 || (n > 0 && (images == nullptr || out == nullptr)) || p == nullptr)
    return fail(FL_ERR_INVALID_ARGUMENT, "preprocess: null images, params or output, or negative count");
  if (!side_ok(p->out_height) || !side_ok(p->out_width))
    return fail(FL_ERR_INVALID_ARGUMENT, "preprocess: output size must be 1.." + std::to_string(FL_MAX_SIDE) +
                                             " on each side, got " + std::to_string(p->out_height) + "x" +
                                             std::to_string(p->out_width));
  if (p->out_dtype != FL_FLOAT32 && p->out_dtype != FL_FLOAT16)
    return fail(FL_ERR_INVALID_ARGUMENT, "preprocess: out_dtype must be FL_FLOAT32 or FL_FLOAT16");
  for (int c = 0; c < 3; ++c)
    if (!std::isfinite(p->mean255[c]) || !std::isfinite(p->inv_std255[c]) || !(p->inv_std255[c] > 0.0f))
      return fail(FL_ERR_INVALID_ARGUMENT, "preprocess: mean and inverse std must be finite, inverse std > 0");
  for (int32_t k = 0; k < n; ++k) {
    const fl_image& im = images[k];
    if (im.data == nullptr) return fail(FL_ERR_INVALID_ARGUMENT, where("image", k) + "null data pointer");
    if (!side_ok(im.height) || !side_ok(im.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("image", k) + "size must be 1.." + std::to_string(FL_MAX_SIDE) +
                                               " on each side, got " + std::to_string(im.height) + "x" +
                                               std::to_string(im.width));
    if (im.pitch < 3 * static_cast<int64_t>(im.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("image", k) + "row pitch " + std::to_string(im.pitch) +
                                               " is smaller than 3 * width");
  }
  return FL_OK;
}

int32_t check_postprocess(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity) {
  if (n < 0 || (n > 0 && items == nullptr))
    return fail(FL_ERR_INVALID_ARGUMENT, "postprocess: null items or negative count");
  bool overlays = false;
  for (int32_t k = 0; k < n; ++k) {
    const fl_postprocess_item& it = items[k];
    if (it.map == nullptr) return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "null map pointer");
    if (!side_ok(it.map_height) || !side_ok(it.map_width) || !side_ok(it.height) || !side_ok(it.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "map and output sizes must be 1.." +
                                               std::to_string(FL_MAX_SIDE) + " on each side");
    if (it.map_pitch < 4 * static_cast<int64_t>(it.map_width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "map row pitch is smaller than 4 * map width");
    if (it.map_out == nullptr && it.overlay_out == nullptr)
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "neither map_out nor overlay_out is set");
    if (it.map_out != nullptr && it.map_out_pitch < 4 * static_cast<int64_t>(it.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "map_out row pitch is smaller than 4 * width");
    if (it.overlay_out != nullptr) {
      overlays = true;
      if (it.image == nullptr)
        return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "an overlay needs the image");
      if (it.image_pitch < 3 * static_cast<int64_t>(it.width) || it.overlay_out_pitch < 3 * static_cast<int64_t>(it.width))
        return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "image or overlay row pitch is smaller than 3 * width");
    }
  }
  if (overlays && lut == nullptr) return fail(FL_ERR_INVALID_ARGUMENT, "postprocess: overlays need the 256 x 3 colour table");
  if (overlays && opacity == nullptr)
    return fail(FL_ERR_INVALID_ARGUMENT, "postprocess: overlays need the 256-entry opacity table");
  if (overlays)
    for (int32_t l = 0; l < 256; ++l)
      if (!(opacity[l] >= 0.0f && opacity[l] <= 1.0f))
        return fail(FL_ERR_INVALID_ARGUMENT, "postprocess: opacity[" + std::to_string(l) + "] must be in [0, 1]");
  return FL_OK;
}

}  // namespace fl

extern "C" {

FL_API int32_t fl_abi_version(void) { return FL_ABI_VERSION; }

FL_API int32_t fl_has_cuda(void) {
#if defined(FAKELOCATOR_WITH_CUDA)
  return 1;
#else
  return 0;
#endif
}

FL_API const char* fl_last_error(void) { return fl::last_error.c_str(); }

}  // extern "C"
