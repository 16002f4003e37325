// Grouped-query attention of one new token per row over its KV cache, in fp32 on the CPU.
// Built by harness/models/attention_kernel.py at first use (its docstring says why it exists).
//
// query [rows, kv heads, group, head dim]: the `group` query heads that share one key/value head;
// key, value [rows, kv heads, positions, head dim], any strides with the head dim contiguous (views of a
// larger cache buffer); visible [rows, positions] bool, or an empty tensor when every position is visible.
// Returns [rows, kv heads, group, head dim].
//
// Each (row, kv head) reads its keys and values once per query head of its group, from cache after the
// first; the products run on 16-float vectors (GCC/Clang vector extensions, lowered to whatever the
// build machine has), the softmax is ATen's.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <limits>

namespace {

typedef float vec16 __attribute__((vector_size(64), aligned(4)));
typedef float vec8 __attribute__((vector_size(32), aligned(4)));
typedef float vec4 __attribute__((vector_size(16), aligned(4)));

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

// out[r, h, g] = sum over l of weights[r, h, g, l] * value[r, h, l].
template <int CHUNKS>
void weighted_values(const float* weights, const float* value, const Layout& at, float* out) {
  at::parallel_for(0, at.rows * at.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t r = pair / at.heads, h = pair % at.heads;
      const float* values = value + r * at.value_row + h * at.value_head;
      for (int64_t g = 0; g < at.group; ++g) {
        const float* w = weights + (pair * at.group + g) * at.positions;
        vec16 acc[CHUNKS] = {};
        for (int64_t l = 0; l < at.positions; ++l) {
          const vec16* v = reinterpret_cast<const vec16*>(values + l * at.value_position);
          for (int c = 0; c < CHUNKS; ++c) acc[c] += w[l] * v[c];
        }
        vec16* o = reinterpret_cast<vec16*>(out + (pair * at.group + g) * CHUNKS * 16);
        for (int c = 0; c < CHUNKS; ++c) o[c] = acc[c];
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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("grouped_decode_attention", &grouped_decode_attention, "grouped-query attention of one new token per row over its KV cache");
}
