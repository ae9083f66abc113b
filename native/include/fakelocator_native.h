/* fakelocator native pre/post-processing: the C ABI.
 *
 * One shared library, loaded by fakelocator.runtime.native with ctypes. Every entry point
 * returns FL_OK (0) or an fl_status error code; the reason is then in fl_last_error() (per thread).
 * The CPU entry points always work; the CUDA ones return FL_ERR_NO_CUDA_SUPPORT when the
 * library was built without nvcc, and FL_ERR_CUDA (with the CUDA error name) when the
 * machine has no usable driver or device.
 *
 * Arithmetic (identical on CPU and GPU, see docs/native.md):
 *   resize: bilinear, half-pixel centres, clamped at the edges, no antialias; the source
 *   coordinate (dst + 0.5) * in / out - 0.5 is computed exactly in integers and its fraction
 *   rounded once to float32; then horizontal then vertical interpolation in float32,
 *   without fused multiply-adds.
 *   normalize: (x - mean255[c]) * inv_std255[c] in float32 (mean255 = 255 * mean,
 *   inv_std255 = 1 / (255 * std), computed by the caller exactly as the Python contract does).
 *   overlay: level = floor(clip(m, 0, 1) * 255 + 0.5) (NaN -> 0); heat = lut[level];
 *   a = opacity[level]; out = floor(a * heat + (1 - a) * image + 0.5) per channel, in float32
 *   (1 - a rounded to float32 first). The caller's opacity table makes the heat map transparent
 *   where the map is near 0 (fakelocator.runtime.overlay.opacity_table).
 *   native analysis (fakelocator/tiling.py, the reference; tiles and stitching below):
 *   layout per axis: L <= tile: one tile at 0; else n = ceil((L - tile) / (tile - overlap)) + 1
 *   tiles at round_half_even(i * (L - tile) / (n - 1)), computed exactly in integers; tiles
 *   row-major. Pixels beyond the image (only when it is smaller than a tile) mirror it
 *   (numpy "symmetric": abc|cba|abc...). Stitch weights per axis, in float64 like the reference:
 *   raw(i) = min(1, (i + 0.5) / overlap, (tile - i - 0.5) / overlap) at a tile's local index i,
 *   divided by the sum of the raw weights of the tiles covering the pixel (ascending tile order),
 *   rounded to float32; a pixel is the float32 sum, in tile order, of (map * wy) * wx.
 */
#ifndef FAKELOCATOR_NATIVE_H
#define FAKELOCATOR_NATIVE_H

#include <stdint.h>

#if defined(_WIN32)
#define FL_API __declspec(dllexport)
#else
#define FL_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature or struct below changes; Python refuses a library with another. */
#define FL_ABI_VERSION 4

/* Images and maps larger than this on a side are refused (keeps the exact coordinate
 * arithmetic in 32-bit integers on the GPU). */
#define FL_MAX_SIDE 32767

typedef enum fl_status {
  FL_OK = 0,
  FL_ERR_INVALID_ARGUMENT = 1,
  FL_ERR_NO_CUDA_SUPPORT = 2, /* built without nvcc */
  FL_ERR_CUDA = 3,            /* a CUDA runtime call failed (no driver, no device, bad pointer...) */
  FL_ERR_INTERNAL = 4,
} fl_status;

typedef enum fl_dtype { FL_FLOAT32 = 0, FL_FLOAT16 = 1, FL_UINT8 = 2 } fl_dtype;

/* One 8-bit, 3-channel, interleaved (HWC) image. `data` is a host pointer for the CPU entry
 * points and a device pointer for the CUDA ones. */
typedef struct fl_image {
  const uint8_t* data; /* first pixel */
  int64_t pitch;       /* bytes from one row to the next, >= 3 * width */
  int32_t height;
  int32_t width;
} fl_image;

/* How images become the network input; the Python side fills it from a Preprocessing contract. */
typedef struct fl_preprocess_params {
  int32_t out_height;
  int32_t out_width;
  int32_t swap_rb;       /* 1: the images' channel order is the reverse of the contract's */
  int32_t out_dtype;     /* fl_dtype */
  float mean255[3];      /* per output channel, in the contract's order */
  float inv_std255[3];
} fl_preprocess_params;

/* One map to bring back to an image's full resolution. `map` is (map_height, map_width) float32
 * with `map_pitch` bytes per row. At least one of `map_out`, `levels_out` and `overlay_out` is set:
 *   map_out:     (height, width) float32, the upsampled map clipped to [0, 1];
 *   levels_out:  (height, width) uint8, its 8-bit levels floor(clip(m, 0, 1) * 255 + 0.5) (NaN -> 0),
 *                what an 8-bit PNG map stores (no float32 full-resolution map needed);
 *   overlay_out: (height, width, 3) uint8 BGR colour-map overlay of `image` (BGR, same size).
 * Host pointers for the CPU entry points, device pointers for the CUDA ones. */
typedef struct fl_postprocess_item {
  const float* map;
  int64_t map_pitch;
  int32_t map_height;
  int32_t map_width;
  int32_t height;
  int32_t width;
  float* map_out;
  int64_t map_out_pitch;
  const uint8_t* image; /* required with overlay_out */
  int64_t image_pitch;
  uint8_t* overlay_out;
  int64_t overlay_out_pitch;
  uint8_t* levels_out;
  int64_t levels_out_pitch;
} fl_postprocess_item;

/* Native analysis, tiles: one image and where its tiles go. The tile size and the normalization
 * are the fl_preprocess_params' (out_height x out_width). Of the image's layout (ny x nx tiles,
 * see the top of this file) the rectangle of tile rows row0 .. row0 + rows - 1 and tile columns
 * col0 .. col0 + cols - 1 is written, row-major, to batch indices first, first + 1, ... of the
 * output; rows = 0 (cols = 0) means through the last row (column): 0, 0, 0, 0 is every tile. */
typedef struct fl_tile_item {
  fl_image image;
  int32_t first;
  int32_t row0;
  int32_t rows;
  int32_t col0;
  int32_t cols;
} fl_tile_item;

/* Native analysis, stitching: one image's tile maps -> its (height, width) map.
 * Tile k's map (row-major layout order) starts at maps + k * tile_stride bytes, rows map_pitch
 * bytes apart, tile_h x tile_w float32. out_dtype FL_FLOAT32: the blended map clipped to [0, 1]
 * (NaN stays NaN); FL_UINT8: its 8-bit levels floor(clip(v, 0, 1) * 255 + 0.5) (NaN -> 0), the
 * values an 8-bit PNG map stores, without a float32 map in between. */
typedef struct fl_stitch_item {
  const float* maps;
  int64_t map_pitch;
  int64_t tile_stride;
  int32_t height;
  int32_t width;
  int32_t tile_h;
  int32_t tile_w;
  int32_t overlap; /* 0 <= overlap < min(tile_h, tile_w) */
  int32_t window;  /* fl_window */
  int32_t out_dtype;
  int32_t reserved; /* 0 */
  void* out;
  int64_t out_pitch;
} fl_stitch_item;

typedef enum fl_window { FL_WINDOW_LINEAR = 0 } fl_window;

FL_API int32_t fl_abi_version(void);
/* 1 when the CUDA entry points were compiled in, else 0. */
FL_API int32_t fl_has_cuda(void);
/* Last error message of the calling thread ("" when none). Valid until the next call. */
FL_API const char* fl_last_error(void);

/* Preprocess n images into out (n, 3, out_height, out_width), image k at batch index k.
 * num_threads <= 0: one per hardware thread. */
FL_API int32_t fl_preprocess_cpu(const fl_image* images, int32_t n, const fl_preprocess_params* params,
                                 void* out, int32_t num_threads);
/* n bilinear upsamplings (+ optional overlays). Needed with overlays: lut, 256 x 3 uint8 BGR, and
 * opacity, 256 float32 in [0, 1] (the heat map's opacity at each map level). */
FL_API int32_t fl_postprocess_cpu(const fl_postprocess_item* items, int32_t n, const uint8_t* lut,
                                  const float* opacity, int32_t num_threads);

/* Tiles of n images (native analysis) into out (N, 3, out_height, out_width), float32 or float16
 * (params.out_dtype), each normalized like a preprocessed image. */
FL_API int32_t fl_tiles_cpu(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params,
                            void* out, int32_t num_threads);
/* n stitchings (native analysis). */
FL_API int32_t fl_stitch_cpu(const fl_stitch_item* items, int32_t n, int32_t num_threads);
/* How many tiles an image of height x width takes (FL_ERR_INVALID_ARGUMENT on bad sizes). */
FL_API int32_t fl_tile_count(int32_t height, int32_t width, int32_t tile_h, int32_t tile_w, int32_t overlap,
                             int32_t* count);

/* Number of CUDA devices the library's runtime sees (FL_ERR_CUDA when there is no driver). */
FL_API int32_t fl_cuda_device_count(int32_t* count);
/* The CUDA versions of the two above: device pointers, enqueued on `stream` (a cudaStream_t;
 * NULL = the legacy default stream), asynchronous with respect to the host. `images`, `items`,
 * `params`, `lut` and `opacity` are host memory and may be freed when the call returns. Only launch errors
 * are reported here; errors during execution surface at the next synchronization. */
FL_API int32_t fl_preprocess_cuda(const fl_image* images, int32_t n, const fl_preprocess_params* params,
                                  void* out, void* stream);
FL_API int32_t fl_postprocess_cuda(const fl_postprocess_item* items, int32_t n, const uint8_t* lut,
                                   const float* opacity, void* stream);
FL_API int32_t fl_tiles_cuda(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params,
                             void* out, void* stream);
FL_API int32_t fl_stitch_cuda(const fl_stitch_item* items, int32_t n, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* FAKELOCATOR_NATIVE_H */
