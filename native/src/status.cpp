// Error reporting, version queries and the argument checks shared by both implementations.
#include <algorithm>
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
    if (it.map_out == nullptr && it.overlay_out == nullptr && it.levels_out == nullptr)
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "none of map_out, levels_out and overlay_out is set");
    if (it.levels_out != nullptr && it.levels_out_pitch < static_cast<int64_t>(it.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("map", k) + "levels_out row pitch is smaller than the width");
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

namespace {
// The tile size and overlap of native analysis: tiles of 1..FL_MAX_SIDE, 0 <= 2 * overlap < tile
// (so that at most kMaxCover tiles cover a pixel; the contract asks the same).
int32_t check_tiling(const char* what, int32_t tile_h, int32_t tile_w, int32_t overlap) {
  if (!side_ok(tile_h) || !side_ok(tile_w))
    return fail(FL_ERR_INVALID_ARGUMENT, std::string(what) + ": tile size must be 1.." + std::to_string(FL_MAX_SIDE) +
                                             " on each side, got " + std::to_string(tile_h) + "x" + std::to_string(tile_w));
  if (overlap < 0 || 2 * static_cast<int64_t>(overlap) >= std::min(tile_h, tile_w))
    return fail(FL_ERR_INVALID_ARGUMENT, std::string(what) + ": tile overlap must be in [0, half the tile), got " +
                                             std::to_string(overlap) + " for tiles of " + std::to_string(tile_h) + "x" +
                                             std::to_string(tile_w));
  return FL_OK;
}
}  // namespace

int32_t check_tiles(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* p, const void* out) {
  if (n < 0 || (n > 0 && (items == nullptr || out == nullptr)) || p == nullptr)
    return fail(FL_ERR_INVALID_ARGUMENT, "tiles: null items, params or output, or negative count");
  // The image checks of preprocess, on the images alone (they are what both share).
  for (int32_t k = 0; k < n; ++k) {
    if (int32_t s = check_preprocess(&items[k].image, 1, p, out)) {
      last_error = where("tile image", k) + last_error;
      return s;
    }
    if (items[k].first < 0) return fail(FL_ERR_INVALID_ARGUMENT, where("tile image", k) + "negative batch index");
    const fl_tile_item& it = items[k];
    if (check_tiling("tiles", p->out_height, p->out_width, overlap) == FL_OK) {
      const int32_t ny = axis_tiles(it.image.height, p->out_height, overlap), nx = axis_tiles(it.image.width, p->out_width, overlap);
      if (it.row0 < 0 || it.col0 < 0 || it.rows < 0 || it.cols < 0 || it.row0 >= ny || it.col0 >= nx ||
          static_cast<int64_t>(it.row0) + it.rows > ny || static_cast<int64_t>(it.col0) + it.cols > nx)
        return fail(FL_ERR_INVALID_ARGUMENT, where("tile image", k) + "tile rectangle rows " + std::to_string(it.row0) + "+" +
                                                 std::to_string(it.rows) + ", columns " + std::to_string(it.col0) + "+" +
                                                 std::to_string(it.cols) + " is outside its " + std::to_string(ny) + " x " +
                                                 std::to_string(nx) + " tiles");
    }
  }
  if (n == 0) {
    if (int32_t s = check_preprocess(nullptr, 0, p, out)) return s;
  }
  return check_tiling("tiles", p->out_height, p->out_width, overlap);
}

int32_t check_stitch(const fl_stitch_item* items, int32_t n) {
  if (n < 0 || (n > 0 && items == nullptr)) return fail(FL_ERR_INVALID_ARGUMENT, "stitch: null items or negative count");
  for (int32_t k = 0; k < n; ++k) {
    const fl_stitch_item& it = items[k];
    if (it.maps == nullptr || it.out == nullptr)
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) + "null maps or output pointer");
    if (!side_ok(it.height) || !side_ok(it.width))
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) + "image size must be 1.." + std::to_string(FL_MAX_SIDE) +
                                               " on each side, got " + std::to_string(it.height) + "x" + std::to_string(it.width));
    if (int32_t s = check_tiling("stitch", it.tile_h, it.tile_w, it.overlap)) return s;
    if (it.window != FL_WINDOW_LINEAR || it.reserved != 0)
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) + "window must be FL_WINDOW_LINEAR (reserved 0)");
    if (it.out_dtype != FL_FLOAT32 && it.out_dtype != FL_UINT8)
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) + "out_dtype must be FL_FLOAT32 or FL_UINT8");
    if (it.map_pitch < 4 * static_cast<int64_t>(it.tile_w) || it.tile_stride < it.map_pitch * it.tile_h)
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) +
                                               "map row pitch must be >= 4 * tile width and tile stride >= pitch * tile height");
    const int64_t row = static_cast<int64_t>(it.width) * (it.out_dtype == FL_UINT8 ? 1 : 4);
    if (it.out_pitch < row)
      return fail(FL_ERR_INVALID_ARGUMENT, where("stitch item", k) + "output row pitch " + std::to_string(it.out_pitch) +
                                               " is smaller than a row (" + std::to_string(row) + " bytes)");
  }
  return FL_OK;
}

}  // namespace fl

extern "C" {

FL_API int32_t fl_tile_count(int32_t height, int32_t width, int32_t tile_h, int32_t tile_w, int32_t overlap,
                             int32_t* count) {
  fl::clear_error();
  if (count == nullptr) return fl::fail(FL_ERR_INVALID_ARGUMENT, "tile_count: null output");
  *count = 0;
  if (!fl::side_ok(height) || !fl::side_ok(width))
    return fl::fail(FL_ERR_INVALID_ARGUMENT, "tile_count: image size must be 1.." + std::to_string(FL_MAX_SIDE) + " on each side");
  if (int32_t s = fl::check_tiling("tile_count", tile_h, tile_w, overlap)) return s;
  *count = fl::axis_tiles(height, tile_h, overlap) * fl::axis_tiles(width, tile_w, overlap);
  return FL_OK;
}


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
