// CPU implementation: the same arithmetic as cuda.cu (common.h), parallel over rows with std::thread.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

#include "common.h"

namespace fl {
namespace {

// Calls body(worker, unit) for unit in [0, units) on up to `threads` threads (the caller's
// included); workers take units from a shared counter, so uneven units balance out. `body` must
// not throw (it runs on threads of its own): everything it needs is allocated beforehand.
template <class Body>
void parallel_for(int64_t units, int32_t threads, Body body) {
  const int32_t workers = static_cast<int32_t>(std::min<int64_t>(threads, units));
  std::atomic<int64_t> next{0};
  auto run = [&](int32_t worker) {
    for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1)) body(worker, u);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers > 0 ? workers - 1 : 0);
  for (int32_t w = 1; w < workers; ++w) {
    try {
      pool.emplace_back(run, w);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running share the work
    }
  }
  if (workers > 0) run(0);
  for (auto& t : pool) t.join();
}

int32_t resolve_threads(int32_t threads) {
  return threads > 0 ? threads : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
}

// float32 -> IEEE half, round to nearest even (F. Giesen's float_to_half_fast3_rtne): the same
// rounding as numpy's astype(float16) and CUDA's __float2half_rn.
inline uint16_t to_half(float value) {
  uint32_t f;
  std::memcpy(&f, &value, 4);
  const uint32_t sign = f & 0x80000000u;
  f ^= sign;
  uint16_t h;
  if (f >= (127u + 16u) << 23) {  // overflows half: Inf, or NaN
    h = f > (255u << 23) ? 0x7e00 : 0x7c00;
  } else if (f < (113u << 23)) {  // half subnormal or zero: let the FPU round at 2^-24
    const uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    float magic, sum;
    std::memcpy(&magic, &magic_bits, 4);
    std::memcpy(&sum, &f, 4);
    sum += magic;
    uint32_t bits;
    std::memcpy(&bits, &sum, 4);
    h = static_cast<uint16_t>(bits - magic_bits);
  } else {
    const uint32_t odd = (f >> 13) & 1u;
    f += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + odd;
    h = static_cast<uint16_t>(f >> 13);
  }
  return static_cast<uint16_t>(h | (sign >> 16));
}

std::vector<Tap> taps(int32_t in, int32_t out) {
  std::vector<Tap> t(out);
  for (int32_t d = 0; d < out; ++d) t[d] = tap(d, in, out);
  return t;
}

// The row loops are also compiled for AVX2 and picked at load time (GCC/Clang function
// multi-versioning): twice the vector width, the same arithmetic and bits (no FMA: AVX2 alone
// does not enable it, and -ffp-contract=off forbids contraction anyway).
#if defined(__x86_64__) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 6))
#define FL_ROW_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define FL_ROW_LOOP
#endif

constexpr int64_t kPreRowsPerUnit = 8;
constexpr int64_t kPostRowsPerUnit = 16;

// Two horizontally interpolated source rows, reused while consecutive output rows need them.
struct RowCache {
  std::vector<float> buf[2];
  int32_t row[2] = {-1, -1};
  int64_t owner = -1;  // index of the image or map the rows belong to

  explicit RowCache(size_t size) : buf{std::vector<float>(size), std::vector<float>(size)} {}

  void use_for(int64_t who) {
    if (owner == who) return;
    owner = who;
    row[0] = row[1] = -1;
  }
  // The slot holding source row `r`, computing it with fill(r, dst) if absent and never
  // evicting row `keep`.
  template <class Fill>
  const float* get(int32_t r, int32_t keep, Fill fill) {
    for (int s = 0; s < 2; ++s)
      if (row[s] == r) return buf[s].data();
    const int s = row[0] == keep ? 1 : 0;
    fill(r, buf[s].data());
    row[s] = r;
    return buf[s].data();
  }
};

// One 3-channel source row -> (3, out_w) planar floats in the contract's channel order.
FL_ROW_LOOP void hresize_image_row(const uint8_t* src, const std::vector<Tap>& xt, bool swap_rb, float* dst) {
  const int32_t w = static_cast<int32_t>(xt.size());
  for (int32_t c = 0; c < 3; ++c) {
    const int32_t ci = swap_rb ? 2 - c : c;
    float* d = dst + static_cast<int64_t>(c) * w;
    for (int32_t x = 0; x < w; ++x) {
      const Tap& t = xt[x];
      d[x] = lerp(static_cast<float>(src[3 * t.i0 + ci]), static_cast<float>(src[3 * t.i1 + ci]), t.w0, t.w1);
    }
  }
}

FL_ROW_LOOP void hresize_map_row(const float* src, const std::vector<Tap>& xt, float* dst) {
  const int32_t w = static_cast<int32_t>(xt.size());
  for (int32_t x = 0; x < w; ++x) dst[x] = lerp(src[xt[x].i0], src[xt[x].i1], xt[x].w0, xt[x].w1);
}

// Two horizontally resized map rows -> one full-resolution row, clipped to [0, 1].
FL_ROW_LOOP void vresize_clip_row(const float* __restrict r0, const float* __restrict r1, float w0, float w1, float* __restrict dst,
                      int32_t w) {
  for (int32_t x = 0; x < w; ++x) dst[x] = clip01(lerp(r0[x], r1[x], w0, w1));
}

// 8-bit levels of a row (floor(clip(v, 0, 1) * 255 + 0.5), NaN -> 0).
FL_ROW_LOOP void level_row(const float* __restrict row, uint8_t* __restrict out, int32_t w) {
  for (int32_t x = 0; x < w; ++x) out[x] = static_cast<uint8_t>(level(row[x]));
}

// Per-worker scratch of the overlay.
struct OverlayScratch {
  std::vector<int32_t> base;  // (w,): where each pixel's level starts in the blend table
  explicit OverlayScratch(size_t w) : base(w) {}
};

// A clipped map row (values in [0, 1] or NaN) and an image row -> an overlay row. The overlay of a
// pixel channel depends only on the map level, the channel and the image value, so `table` holds
// blend() for all 256 x 3 x 256 of them (196 KB, built once per call: stays in L2), and the row
// is two lookups per byte.
FL_ROW_LOOP void overlay_row(const float* __restrict m, const uint8_t* __restrict image, const uint8_t* __restrict table,
                 OverlayScratch& scratch, uint8_t* __restrict out, int32_t w) {
  int32_t* __restrict base = scratch.base.data();
  for (int32_t x = 0; x < w; ++x) base[x] = level(m[x]) * (3 * 256);
  for (int32_t x = 0; x < w; ++x) {
    const uint8_t* t = table + base[x];
    out[3 * x] = t[image[3 * x]];
    out[3 * x + 1] = t[256 + image[3 * x + 1]];
    out[3 * x + 2] = t[512 + image[3 * x + 2]];
  }
}

int32_t preprocess(const fl_image* images, int32_t n, const fl_preprocess_params& p, void* out, int32_t threads) {
  const int32_t oh = p.out_height, ow = p.out_width;
  const int64_t plane = static_cast<int64_t>(oh) * ow;
  std::vector<std::vector<Tap>> xts(n), yts(n);
  for (int32_t k = 0; k < n; ++k) {
    xts[k] = taps(images[k].width, ow);
    yts[k] = taps(images[k].height, oh);
  }
  const int64_t blocks = (oh + kPreRowsPerUnit - 1) / kPreRowsPerUnit;
  const int32_t workers = resolve_threads(threads);
  std::vector<RowCache> caches(workers, RowCache(3 * static_cast<size_t>(ow)));
  std::vector<std::vector<float>> rows(workers, std::vector<float>(3 * static_cast<size_t>(ow)));
  parallel_for(n * blocks, workers, [&](int32_t worker, int64_t unit) {
    const int32_t k = static_cast<int32_t>(unit / blocks);
    const fl_image& im = images[k];
    RowCache& cache = caches[worker];
    cache.use_for(k);
    float* v = rows[worker].data();  // (3, ow): one output row, before normalization
    const bool swap = p.swap_rb != 0;
    auto fill = [&](int32_t r, float* dst) { hresize_image_row(im.data + r * im.pitch, xts[k], swap, dst); };
    const int32_t y_end = static_cast<int32_t>(std::min<int64_t>(oh, (unit % blocks + 1) * kPreRowsPerUnit));
    for (int32_t y = static_cast<int32_t>(unit % blocks * kPreRowsPerUnit); y < y_end; ++y) {
      const Tap& ty = yts[k][y];
      const float* r0 = cache.get(ty.i0, ty.i1, fill);
      const float* r1 = cache.get(ty.i1, ty.i0, fill);
      for (int32_t i = 0; i < 3 * ow; ++i) v[i] = lerp(r0[i], r1[i], ty.w0, ty.w1);
      for (int32_t c = 0; c < 3; ++c) {
        const float m = p.mean255[c], s = p.inv_std255[c];
        const float* vc = v + static_cast<int64_t>(c) * ow;
        const int64_t offset = (static_cast<int64_t>(k) * 3 + c) * plane + static_cast<int64_t>(y) * ow;
        if (p.out_dtype == FL_FLOAT16) {
          uint16_t* o = static_cast<uint16_t*>(out) + offset;
          for (int32_t x = 0; x < ow; ++x) o[x] = to_half(mul(sub(vc[x], m), s));
        } else {
          float* o = static_cast<float*>(out) + offset;
          for (int32_t x = 0; x < ow; ++x) o[x] = mul(sub(vc[x], m), s);
        }
      }
    }
  });
  return FL_OK;
}

int32_t postprocess(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity, int32_t threads) {
  std::vector<std::vector<Tap>> xts(n), yts(n);
  std::vector<int64_t> first_unit(n + 1, 0);
  for (int32_t k = 0; k < n; ++k) {
    xts[k] = taps(items[k].map_width, items[k].width);
    yts[k] = taps(items[k].map_height, items[k].height);
    first_unit[k + 1] = first_unit[k] + (items[k].height + kPostRowsPerUnit - 1) / kPostRowsPerUnit;
  }
  // blend() of every (level, channel, image value): [level][channel][value], 196 KB.
  std::vector<uint8_t> table(lut != nullptr && opacity != nullptr ? 256 * 3 * 256 : 0);
  if (!table.empty())
    for (int32_t l = 0; l < 256; ++l) {
      const float a = opacity[l], b = sub(1.0f, opacity[l]);  // rounded once, as the CUDA kernel does
      for (int32_t c = 0; c < 3; ++c)
        for (int32_t v = 0; v < 256; ++v) table[(l * 3 + c) * 256 + v] = blend(lut[3 * l + c], v, a, b);
    }
  const int32_t workers = resolve_threads(threads);
  int32_t max_width = 1;
  for (int32_t k = 0; k < n; ++k) max_width = std::max(max_width, items[k].width);
  std::vector<RowCache> caches(workers, RowCache(static_cast<size_t>(max_width)));
  std::vector<std::vector<float>> rows(workers, std::vector<float>(static_cast<size_t>(max_width)));
  std::vector<OverlayScratch> overlay_scratch(workers, OverlayScratch(lut != nullptr ? max_width : 0));
  parallel_for(first_unit[n], workers, [&](int32_t worker, int64_t unit) {
    const int32_t k = static_cast<int32_t>(std::upper_bound(first_unit.begin(), first_unit.end(), unit) - first_unit.begin() - 1);
    const fl_postprocess_item& it = items[k];
    const int32_t w = it.width;
    RowCache& cache = caches[worker];
    cache.use_for(k);
    auto fill = [&](int32_t r, float* dst) {
      hresize_map_row(reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(it.map) + r * it.map_pitch), xts[k], dst);
    };
    const int32_t y0 = static_cast<int32_t>((unit - first_unit[k]) * kPostRowsPerUnit);
    const int32_t y_end = std::min<int32_t>(it.height, y0 + static_cast<int32_t>(kPostRowsPerUnit));
    for (int32_t y = y0; y < y_end; ++y) {
      const Tap& ty = yts[k][y];
      const float* r0 = cache.get(ty.i0, ty.i1, fill);
      const float* r1 = cache.get(ty.i1, ty.i0, fill);
      // The clipped row goes straight to the output map when there is one; the overlay reads it back.
      float* m = it.map_out != nullptr ? reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(it.map_out) + y * it.map_out_pitch)
                                       : rows[worker].data();
      vresize_clip_row(r0, r1, ty.w0, ty.w1, m, w);
      if (it.levels_out != nullptr) level_row(m, it.levels_out + y * it.levels_out_pitch, w);
      if (it.overlay_out != nullptr)
        overlay_row(m, it.image + y * it.image_pitch, table.data(), overlay_scratch[worker],
                    it.overlay_out + y * it.overlay_out_pitch, w);
    }
  });
  return FL_OK;
}

// ---- native analysis -----------------------------------------------------------------------

constexpr int64_t kTileRowsPerUnit = 32;
constexpr int64_t kStitchRowsPerUnit = 16;

// One tile row: 3-channel source pixels (src[3 * cols[x]], or contiguous from src when cols is
// null) -> three normalized float32 planes of the output (rows `plane` floats apart).
FL_ROW_LOOP void tile_row(const uint8_t* __restrict src, const int32_t* __restrict cols, int32_t w, bool swap_rb,
                          const fl_preprocess_params& p, float* __restrict out, int64_t plane) {
  for (int32_t c = 0; c < 3; ++c) {
    const int32_t ci = swap_rb ? 2 - c : c;
    const float m = p.mean255[c], s = p.inv_std255[c];
    float* __restrict o = out + c * plane;
    if (cols == nullptr) {
      for (int32_t x = 0; x < w; ++x) o[x] = mul(sub(static_cast<float>(src[3 * x + ci]), m), s);
    } else {
      for (int32_t x = 0; x < w; ++x) o[x] = mul(sub(static_cast<float>(src[3 * cols[x] + ci]), m), s);
    }
  }
}

struct TileJob {
  int32_t item, y0, x0;
  int64_t index;  // batch index of the tile
};

int32_t tiles(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params& p, void* out, int32_t threads) {
  const int32_t th = p.out_height, tw = p.out_width;
  const int64_t plane = static_cast<int64_t>(th) * tw;
  std::vector<TileJob> jobs;
  for (int32_t k = 0; k < n; ++k) {
    const fl_image& im = items[k].image;
    const TileRect r = tile_rect(items[k], th, tw, overlap);
    int64_t index = items[k].first;
    for (int32_t i = r.row0; i < r.row_end; ++i)
      for (int32_t j = r.col0; j < r.col_end; ++j)
        jobs.push_back({k, axis_start(i, r.ny, im.height, th), axis_start(j, r.nx, im.width, tw), index++});
  }
  const int64_t blocks = (th + kTileRowsPerUnit - 1) / kTileRowsPerUnit;
  const int32_t workers = resolve_threads(threads);
  std::vector<std::vector<int32_t>> cols(workers, std::vector<int32_t>(tw));
  std::vector<std::vector<float>> half_rows(p.out_dtype == FL_FLOAT16 ? workers : 0, std::vector<float>(3 * static_cast<size_t>(tw)));
  const bool swap = p.swap_rb != 0;
  parallel_for(static_cast<int64_t>(jobs.size()) * blocks, workers, [&](int32_t worker, int64_t unit) {
    const TileJob& job = jobs[unit / blocks];
    const fl_image& im = items[job.item].image;
    // Columns: contiguous when the tile lies inside the image, else mirrored (only an image
    // narrower than a tile has a tile reaching past its edge).
    const bool inside = job.x0 + tw <= im.width;
    int32_t* col = cols[worker].data();
    if (!inside)
      for (int32_t x = 0; x < tw; ++x) col[x] = mirror(job.x0 + x, im.width);
    const int32_t y_first = static_cast<int32_t>(unit % blocks * kTileRowsPerUnit);
    const int32_t y_end = static_cast<int32_t>(std::min<int64_t>(th, y_first + kTileRowsPerUnit));
    for (int32_t y = y_first; y < y_end; ++y) {
      const uint8_t* row = im.data + static_cast<int64_t>(mirror(job.y0 + y, im.height)) * im.pitch;
      const int64_t offset = job.index * 3 * plane + static_cast<int64_t>(y) * tw;
      const uint8_t* src = inside ? row + 3 * static_cast<int64_t>(job.x0) : row;
      const int32_t* c = inside ? nullptr : col;
      if (p.out_dtype == FL_FLOAT16) {
        // float32 first (a scratch row), then rounded to half: the preprocess path's order.
        float* v = half_rows[worker].data();
        tile_row(src, c, tw, swap, p, v, tw);
        for (int32_t ch = 0; ch < 3; ++ch) {
          uint16_t* o = static_cast<uint16_t*>(out) + offset + ch * plane;
          for (int32_t x = 0; x < tw; ++x) o[x] = to_half(v[ch * tw + x]);
        }
      } else {
        tile_row(src, c, tw, swap, p, static_cast<float*>(out) + offset, plane);
      }
    }
  });
  return FL_OK;
}

// acc[x] += (m[x] * wy) * wx[x]: one tile row's weighted contribution, in the reference's order.
FL_ROW_LOOP void accumulate_row(float* __restrict acc, const float* __restrict m, float wy, const float* __restrict wx, int32_t w) {
  for (int32_t x = 0; x < w; ++x) acc[x] = add(acc[x], mul(mul(m[x], wy), wx[x]));
}

FL_ROW_LOOP void clip_row(float* __restrict row, int32_t w) {
  for (int32_t x = 0; x < w; ++x) row[x] = clip01(row[x]);
}

// One axis of a stitching: the tiles' starts and, per tile, its normalized weights over its valid
// pixels (the reference's axis_weights); per pixel, the tiles covering it.
struct Axis {
  int32_t n = 0;
  std::vector<int32_t> starts;
  std::vector<std::vector<float>> weights;
  std::vector<Cover> cover;

  Axis(int32_t length, int32_t tile, int32_t overlap) : n(axis_tiles(length, tile, overlap)), starts(n), weights(n), cover(length) {
    for (int32_t i = 0; i < n; ++i) {
      starts[i] = axis_start(i, n, length, tile);
      weights[i].resize(std::min(tile, length - starts[i]));
    }
    float w[kMaxCover];
    for (int32_t p = 0; p < length; ++p) {
      cover[p] = axis_weights_at(p, n, length, tile, overlap, w);
      for (int32_t j = 0; j < cover[p].count; ++j) weights[cover[p].first + j][p - starts[cover[p].first + j]] = w[j];
    }
  }
};

int32_t stitch(const fl_stitch_item* items, int32_t n, int32_t threads) {
  std::vector<Axis> ys, xs;
  ys.reserve(n);
  xs.reserve(n);
  std::vector<int64_t> first_unit(n + 1, 0);
  int32_t max_width = 1;
  for (int32_t k = 0; k < n; ++k) {
    const fl_stitch_item& it = items[k];
    ys.emplace_back(it.height, it.tile_h, it.overlap);
    xs.emplace_back(it.width, it.tile_w, it.overlap);
    first_unit[k + 1] = first_unit[k] + (it.height + kStitchRowsPerUnit - 1) / kStitchRowsPerUnit;
    max_width = std::max(max_width, it.width);
  }
  const int32_t workers = resolve_threads(threads);
  std::vector<std::vector<float>> rows(workers, std::vector<float>(static_cast<size_t>(max_width)));
  parallel_for(first_unit[n], workers, [&](int32_t worker, int64_t unit) {
    const int32_t k = static_cast<int32_t>(std::upper_bound(first_unit.begin(), first_unit.end(), unit) - first_unit.begin() - 1);
    const fl_stitch_item& it = items[k];
    const Axis& ay = ys[k];
    const Axis& ax = xs[k];
    const bool u8 = it.out_dtype == FL_UINT8;
    const int32_t y0 = static_cast<int32_t>((unit - first_unit[k]) * kStitchRowsPerUnit);
    const int32_t y_end = std::min<int32_t>(it.height, y0 + static_cast<int32_t>(kStitchRowsPerUnit));
    for (int32_t y = y0; y < y_end; ++y) {
      // The float32 sum goes straight into a float32 output row; uint8 levels come from a scratch row.
      float* acc = u8 ? rows[worker].data() : reinterpret_cast<float*>(static_cast<uint8_t*>(it.out) + y * it.out_pitch);
      std::fill(acc, acc + it.width, 0.0f);
      const Cover cy = ay.cover[y];
      for (int32_t i = cy.first; i < cy.first + cy.count; ++i) {
        const int32_t ly = y - ay.starts[i];
        const float wy = ay.weights[i][ly];
        for (int32_t j = 0; j < ax.n; ++j) {
          const int64_t tile = static_cast<int64_t>(i) * ax.n + j;
          const float* m = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(it.maps) + tile * it.tile_stride +
                                                          ly * it.map_pitch);
          const std::vector<float>& wx = ax.weights[j];
          accumulate_row(acc + ax.starts[j], m, wy, wx.data(), static_cast<int32_t>(wx.size()));
        }
      }
      if (u8)
        level_row(acc, static_cast<uint8_t*>(it.out) + y * it.out_pitch, it.width);
      else
        clip_row(acc, it.width);
    }
  });
  return FL_OK;
}

template <class F>
int32_t guarded(const char* what, F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return fail(FL_ERR_INTERNAL, std::string(what) + ": " + e.what());
  }
}

}  // namespace
}  // namespace fl

extern "C" {

FL_API int32_t fl_preprocess_cpu(const fl_image* images, int32_t n, const fl_preprocess_params* params, void* out,
                                 int32_t num_threads) {
  fl::clear_error();
  if (int32_t s = fl::check_preprocess(images, n, params, out)) return s;
  return fl::guarded("preprocess", [&] { return fl::preprocess(images, n, *params, out, num_threads); });
}

FL_API int32_t fl_postprocess_cpu(const fl_postprocess_item* items, int32_t n, const uint8_t* lut, const float* opacity,
                                  int32_t num_threads) {
  fl::clear_error();
  if (int32_t s = fl::check_postprocess(items, n, lut, opacity)) return s;
  return fl::guarded("postprocess", [&] { return fl::postprocess(items, n, lut, opacity, num_threads); });
}

FL_API int32_t fl_tiles_cpu(const fl_tile_item* items, int32_t n, int32_t overlap, const fl_preprocess_params* params,
                            void* out, int32_t num_threads) {
  fl::clear_error();
  if (int32_t s = fl::check_tiles(items, n, overlap, params, out)) return s;
  return fl::guarded("tiles", [&] { return fl::tiles(items, n, overlap, *params, out, num_threads); });
}

FL_API int32_t fl_stitch_cpu(const fl_stitch_item* items, int32_t n, int32_t num_threads) {
  fl::clear_error();
  if (int32_t s = fl::check_stitch(items, n)) return s;
  return fl::guarded("stitch", [&] { return fl::stitch(items, n, num_threads); });
}

}  // extern "C"
