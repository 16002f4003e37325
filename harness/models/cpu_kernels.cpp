// The decoder's fp32 CPU kernels, built by harness/models/cpu_kernels.py at first use (its docstring says why
// they exist). Built with -ffp-contract=off, so each does exactly the roundings its source spells out.
//
// grouped_decode_attention: grouped-query attention of one new token per row over its KV cache.
//   query [rows, kv heads, group, head dim]: the `group` query heads that share one key/value head;
//   key, value [rows, kv heads, positions, head dim], any strides with the head dim contiguous (views of a
//   larger cache buffer); visible [rows, positions] bool, contiguous in positions, or an empty tensor when
//   every position is visible. Returns [rows, kv heads, group, head dim].
//   Each (row, kv head) reads its keys once per query head of its group, from cache after the first, and
//   its values once for up to four heads; the products run on 16-float vectors (GCC/Clang vector
//   extensions, lowered to whatever the build machine has), the softmax is ATen's.
// rms_norm: transformers' Llama-style RMSNorm, weight * (x * rsqrt(mean(x^2) + eps)), the mean summed on
//   16-float vectors (ATen sums in another order).
// rotary: transformers' rotary embedding x * cos + rotate_half(x) * sin, the same roundings in the same order.
// greedy_tokens: each row's first index of its largest value, NaN counting as largest (torch.argmax's rule).
// packed_linear (built where the compiler targets AVX-512): out[m, n] = x[m, :] . weight[n, :] (+ bias[n]) for x
//   [rows, in] contiguous and the weight packed in panels of 64 output features [panels, in, 64] (zero past the last
//   feature; linear_kernel.py packs it). Each sum runs over the input features in order, one fused multiply-add each,
//   then adds the bias. Rows go in blocks of six, each a register tile of 6 x 64 sums; the (panel, row block) pairs
//   are split evenly over the threads, so a layer of few panels still keeps every core busy.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>

namespace {

typedef float vec16 __attribute__((vector_size(64), aligned(4)));
typedef float vec8 __attribute__((vector_size(32), aligned(4)));
typedef float vec4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t lanes16 __attribute__((vector_size(64)));

inline float lanes_sum(vec16 v) {
  vec8 half = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  vec4 quarter = __builtin_shufflevector(half, half, 0, 1, 2, 3) + __builtin_shufflevector(half, half, 4, 5, 6, 7);
  return (quarter[0] + quarter[2]) + (quarter[1] + quarter[3]);
}

struct Layout {
  int64_t rows, heads, group, positions;
  int64_t key_row, key_head, key_position, value_row, value_head, value_position, visible_row;
};

// scores[r, h, g, l] = scale * query[r, h, g] . key[r, h, l], or -inf where position l is not visible.
template <int CHUNKS>
void scores_of(const float* query, const float* key, const bool* visible, float scale, const Layout& at, float* scores) {
  const float hidden = -std::numeric_limits<float>::infinity();
  at::parallel_for(0, at.rows * at.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t r = pair / at.heads, h = pair % at.heads;
      const float* keys = key + r * at.key_row + h * at.key_head;
      for (int64_t g = 0; g < at.group; ++g) {
        const vec16* q = reinterpret_cast<const vec16*>(query + (pair * at.group + g) * CHUNKS * 16);
        vec16 q_chunks[CHUNKS];
        for (int c = 0; c < CHUNKS; ++c) q_chunks[c] = q[c];
        float* out = scores + (pair * at.group + g) * at.positions;
        for (int64_t l = 0; l < at.positions; ++l) {
          const vec16* k = reinterpret_cast<const vec16*>(keys + l * at.key_position);
          vec16 acc = q_chunks[0] * k[0];
          for (int c = 1; c < CHUNKS; ++c) acc += q_chunks[c] * k[c];
          out[l] = (visible == nullptr || visible[r * at.visible_row + l]) ? lanes_sum(acc) * scale : hidden;
        }
      }
    }
  });
}

// out[g] = sum over l of weights[g, l] * values[l] for the TILE query heads g of one (row, kv head): each value
// row is read once for all of them, their sums held in registers (TILE * CHUNKS vectors).
template <int CHUNKS, int TILE>
void weighted_tile(const float* weights, int64_t positions, const float* values, int64_t value_position, float* out) {
  vec16 acc[TILE][CHUNKS] = {};
  for (int64_t l = 0; l < positions; ++l) {
    const vec16* v = reinterpret_cast<const vec16*>(values + l * value_position);
    vec16 row[CHUNKS];
    for (int c = 0; c < CHUNKS; ++c) row[c] = v[c];
    for (int g = 0; g < TILE; ++g) {
      const float weight = weights[g * positions + l];
      for (int c = 0; c < CHUNKS; ++c) acc[g][c] += weight * row[c];
    }
  }
  for (int g = 0; g < TILE; ++g)
    for (int c = 0; c < CHUNKS; ++c) reinterpret_cast<vec16*>(out + g * CHUNKS * 16)[c] = acc[g][c];
}

// out[r, h, g] = sum over l of weights[r, h, g, l] * value[r, h, l], the group's heads in tiles of up to 16 vectors
// of sums (4 heads of dim 64, 2 of dim 128).
template <int CHUNKS>
void weighted_values(const float* weights, const float* value, const Layout& at, float* out) {
  constexpr int64_t kTile = 16 / CHUNKS;
  at::parallel_for(0, at.rows * at.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const float* values = value + (pair / at.heads) * at.value_row + (pair % at.heads) * at.value_head;
      for (int64_t g = 0; g < at.group; g += kTile) {
        const float* w = weights + (pair * at.group + g) * at.positions;
        float* o = out + (pair * at.group + g) * CHUNKS * 16;
        switch (std::min(kTile, at.group - g)) {
          case 1: weighted_tile<CHUNKS, 1>(w, at.positions, values, at.value_position, o); break;
          case 2: weighted_tile<CHUNKS, 2>(w, at.positions, values, at.value_position, o); break;
          case 3: weighted_tile<CHUNKS, 3>(w, at.positions, values, at.value_position, o); break;
          default: weighted_tile<CHUNKS, 4>(w, at.positions, values, at.value_position, o); break;
        }
      }
    }
  });
}

template <int CHUNKS>
void attend(const float* query, const float* key, const float* value, const bool* visible, float scale, const Layout& at,
            torch::Tensor& scores, float* out) {
  scores_of<CHUNKS>(query, key, visible, scale, at, scores.data_ptr<float>());
  torch::Tensor weights = scores.softmax(-1);
  weighted_values<CHUNKS>(weights.data_ptr<float>(), value, at, out);
}

torch::Tensor grouped_decode_attention(torch::Tensor query, torch::Tensor key, torch::Tensor value, torch::Tensor visible, double scale) {
  const int64_t head_dim = query.size(3);
  TORCH_CHECK(query.scalar_type() == torch::kFloat && key.scalar_type() == torch::kFloat && value.scalar_type() == torch::kFloat,
              "decode attention takes fp32 tensors");
  TORCH_CHECK(head_dim == 64 || head_dim == 128, "decode attention takes head dim 64 or 128, not ", head_dim);
  TORCH_CHECK(key.stride(3) == 1 && value.stride(3) == 1, "decode attention needs keys and values contiguous in the head dim");
  const bool masked = visible.numel() > 0;
  TORCH_CHECK(!masked || (visible.scalar_type() == torch::kBool && visible.dim() == 2 && visible.stride(1) == 1 &&
                          visible.size(0) == query.size(0) && visible.size(1) == key.size(2)),
              "decode attention takes visible positions as [rows, positions] bool, contiguous in positions");
  torch::Tensor q = query.contiguous();
  Layout at{query.size(0), query.size(1), query.size(2), key.size(2),
            key.stride(0), key.stride(1), key.stride(2), value.stride(0), value.stride(1), value.stride(2), masked ? visible.stride(0) : 0};
  torch::Tensor scores = torch::empty({at.rows, at.heads, at.group, at.positions}, query.options());
  torch::Tensor out = torch::empty_like(q);
  const bool* shown = masked ? visible.data_ptr<bool>() : nullptr;
  if (head_dim == 64) {
    attend<4>(q.data_ptr<float>(), key.data_ptr<float>(), value.data_ptr<float>(), shown, static_cast<float>(scale), at, scores, out.data_ptr<float>());
  } else {
    attend<8>(q.data_ptr<float>(), key.data_ptr<float>(), value.data_ptr<float>(), shown, static_cast<float>(scale), at, scores, out.data_ptr<float>());
  }
  return out;
}

// The least work, in floats, a thread is handed: on less, waking a second thread costs more than it saves.
constexpr int64_t kFloatsPerTask = 1 << 15;

// parallel_for's grain for rows `width` floats wide.
int64_t rows_per_task(int64_t width) { return std::max<int64_t>(1, kFloatsPerTask / std::max<int64_t>(width, 1)); }

torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat, "rms_norm takes fp32 tensors");
  const int64_t width = x.size(-1);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == width, "rms_norm takes a weight as wide as the input's last dim");
  torch::Tensor in = x.contiguous(), w = weight.contiguous();
  torch::Tensor out = torch::empty_like(in);
  const int64_t rows = width == 0 ? 0 : in.numel() / width, vectors = width / 16;
  const float* src = in.data_ptr<float>();
  const float* scale_by = w.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const float epsilon = static_cast<float>(eps);
  at::parallel_for(0, rows, rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = src + r * width;
      vec16 squares = {};
      for (int64_t c = 0; c < vectors; ++c) {
        const vec16 v = reinterpret_cast<const vec16*>(row)[c];
        squares += v * v;
      }
      float sum = lanes_sum(squares);
      for (int64_t i = vectors * 16; i < width; ++i) sum += row[i] * row[i];
      const float inverse = 1.0f / std::sqrt(sum / static_cast<float>(width) + epsilon);
      float* o = dst + r * width;
      for (int64_t i = 0; i < width; ++i) o[i] = scale_by[i] * (row[i] * inverse);
    }
  });
  return out;
}

torch::Tensor rotary(torch::Tensor x, torch::Tensor cos, torch::Tensor sin) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.stride(3) == 1, "rotary takes fp32 [rows, heads, positions, dim], dim contiguous");
  const int64_t rows = x.size(0), heads = x.size(1), positions = x.size(2), dim = x.size(3), half = dim / 2;
  TORCH_CHECK(dim % 2 == 0 && cos.sizes() == sin.sizes() && cos.dim() == 3 && cos.size(0) == rows && cos.size(1) == positions &&
                  cos.size(2) == dim && cos.scalar_type() == torch::kFloat && sin.scalar_type() == torch::kFloat,
              "rotary takes fp32 cos and sin [rows, positions, dim] for an even dim");
  torch::Tensor c = cos.contiguous(), s = sin.contiguous();
  torch::Tensor out = torch::empty({rows, heads, positions, dim}, x.options());
  const float* src = x.data_ptr<float>();
  const float* cosines = c.data_ptr<float>();
  const float* sines = s.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t row_stride = x.stride(0), head_stride = x.stride(1), position_stride = x.stride(2);
  at::parallel_for(0, rows * heads * positions, rows_per_task(dim), [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t r = index / (heads * positions), h = (index / positions) % heads, p = index % positions;
      const float* in = src + r * row_stride + h * head_stride + p * position_stride;
      const float* co = cosines + (r * positions + p) * dim;
      const float* si = sines + (r * positions + p) * dim;
      float* o = dst + index * dim;
      for (int64_t i = 0; i < half; ++i) o[i] = in[i] * co[i] + (-in[i + half]) * si[i];
      for (int64_t i = half; i < dim; ++i) o[i] = in[i] * co[i] + in[i - half] * si[i];
    }
  });
  return out;
}

int64_t first_largest(const float* row, int64_t width) {
  const int64_t vectors = width / 16;
  if (vectors == 0) {
    int64_t best = 0;
    for (int64_t i = 0; i < width; ++i) {
      if (std::isnan(row[i])) return i;
      if (row[i] > row[best]) best = i;
    }
    return best;
  }
  vec16 top = reinterpret_cast<const vec16*>(row)[0];
  lanes16 unordered = {};
  for (int64_t c = 0; c < vectors; ++c) {
    const vec16 v = reinterpret_cast<const vec16*>(row)[c];
    top = v > top ? v : top;
    unordered |= v != v;
  }
  bool nan = false;
  float largest = top[0];
  for (int lane = 0; lane < 16; ++lane) {
    nan |= unordered[lane] != 0;
    largest = std::max(largest, top[lane]);
  }
  for (int64_t i = vectors * 16; i < width; ++i) {
    nan |= std::isnan(row[i]);
    largest = std::max(largest, row[i]);
  }
  for (int64_t i = 0; i < width; ++i) {
    if (nan ? std::isnan(row[i]) : row[i] == largest) return i;
  }
  return 0;
}

torch::Tensor greedy_tokens(torch::Tensor logits) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == torch::kFloat && logits.size(1) > 0, "greedy_tokens takes fp32 logits [rows, vocabulary]");
  torch::Tensor in = logits.contiguous();
  const int64_t rows = in.size(0), width = in.size(1);
  torch::Tensor tokens = torch::empty({rows}, in.options().dtype(torch::kLong));
  const float* src = in.data_ptr<float>();
  int64_t* out = tokens.data_ptr<int64_t>();
  at::parallel_for(0, rows, rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) out[r] = first_largest(src + r * width, width);
  });
  return tokens;
}

#ifdef __AVX512F__
constexpr int64_t kPanel = 64;
constexpr int64_t kRowBlock = 6;

// One block of ROWS rows of x times one panel: ROWS x 64 sums in registers, `columns` of them stored.
template <int ROWS>
void panel_tile(const float* x, int64_t in, const float* panel, const float* bias, int64_t columns, float* out, int64_t out_row) {
  __m512 sums[ROWS][4];
  __mmask16 stored[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t left = std::clamp<int64_t>(columns - 16 * j, 0, 16);
    stored[j] = static_cast<__mmask16>((1u << left) - 1);
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < 4; ++j) sums[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < in; ++k) {
    const float* w = panel + k * kPanel;
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32), w3 = _mm512_loadu_ps(w + 48);
    for (int i = 0; i < ROWS; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * in + k]);
      sums[i][0] = _mm512_fmadd_ps(a, w0, sums[i][0]);
      sums[i][1] = _mm512_fmadd_ps(a, w1, sums[i][1]);
      sums[i][2] = _mm512_fmadd_ps(a, w2, sums[i][2]);
      sums[i][3] = _mm512_fmadd_ps(a, w3, sums[i][3]);
    }
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < 4; ++j) {
      const __m512 sum = bias == nullptr ? sums[i][j] : _mm512_add_ps(sums[i][j], _mm512_maskz_loadu_ps(stored[j], bias + 16 * j));
      _mm512_mask_storeu_ps(out + i * out_row + 16 * j, stored[j], sum);
    }
}

torch::Tensor packed_linear(torch::Tensor x, torch::Tensor panels, c10::optional<torch::Tensor> bias, int64_t out_features) {
  TORCH_CHECK(x.device().is_cpu() && panels.device().is_cpu() && (!bias.has_value() || bias->device().is_cpu()),
              "packed_linear takes CPU tensors");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && panels.scalar_type() == torch::kFloat && panels.dim() == 3 &&
                  panels.size(1) == x.size(1) && panels.size(2) == kPanel && panels.is_contiguous() &&
                  (panels.size(0) - 1) * kPanel < out_features && out_features <= panels.size(0) * kPanel,
              "packed_linear takes fp32 x [rows, in] and a weight packed as [panels, in, 64] for out_features");
  TORCH_CHECK(!bias.has_value() || (bias->scalar_type() == torch::kFloat && bias->dim() == 1 && bias->size(0) == out_features),
              "packed_linear takes an fp32 bias [out_features]");
  torch::Tensor in = x.contiguous();
  torch::Tensor shift = bias.has_value() ? bias->contiguous() : torch::Tensor();
  const int64_t rows = in.size(0), width = in.size(1), blocks = (rows + kRowBlock - 1) / kRowBlock;
  torch::Tensor out = torch::empty({rows, out_features}, in.options());
  const float* src = in.data_ptr<float>();
  const float* weights = panels.data_ptr<float>();
  const float* added = shift.defined() ? shift.data_ptr<float>() : nullptr;
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, panels.size(0) * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t p = unit / blocks, first = (unit % blocks) * kRowBlock, n = p * kPanel;
      const float* x_rows = src + first * width;
      const float* panel = weights + p * width * kPanel;
      const float* b = added == nullptr ? nullptr : added + n;
      const int64_t columns = std::min(kPanel, out_features - n);
      float* o = dst + first * out_features + n;
      switch (std::min(kRowBlock, rows - first)) {
        case 1: panel_tile<1>(x_rows, width, panel, b, columns, o, out_features); break;
        case 2: panel_tile<2>(x_rows, width, panel, b, columns, o, out_features); break;
        case 3: panel_tile<3>(x_rows, width, panel, b, columns, o, out_features); break;
        case 4: panel_tile<4>(x_rows, width, panel, b, columns, o, out_features); break;
        case 5: panel_tile<5>(x_rows, width, panel, b, columns, o, out_features); break;
        default: panel_tile<6>(x_rows, width, panel, b, columns, o, out_features); break;
      }
    }
  });
  return out;
}
#endif

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("grouped_decode_attention", &grouped_decode_attention, "grouped-query attention of one new token per row over its KV cache");
  m.def("rms_norm", &rms_norm, "Llama-style RMSNorm of the last dim");
  m.def("rotary", &rotary, "rotary position embedding, rotate-half layout");
  m.def("greedy_tokens", &greedy_tokens, "each row's first index of its largest value");
#ifdef __AVX512F__
  m.def("packed_linear", &packed_linear, "fp32 x @ weight.T (+ bias) on a weight packed in panels of 64 output features");
#endif
}
