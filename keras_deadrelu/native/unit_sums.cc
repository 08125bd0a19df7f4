// keras-deadrelu: one TensorFlow CPU op that takes every site's per-unit sums
// of a training step in one pass over each site's outputs.
//
// Without XLA, TensorFlow runs every op of a step on its own, and on a small
// CPU each op costs tens of microseconds to dispatch; a streaming monitor
// built from stock ops (sign, matrix products, concat, gather, ...) added 4-8%
// to a 4 x 512 MLP's step. This op replaces them all: it reads each site's
// outputs once and writes the numbers in the monitor's buffer layout, so the
// step gains two ops (this one and the buffer's assign_add).
//
// Inputs: `values`, each site's outputs (float32, rank >= 1), seen as a
// (rows, units) matrix (units contiguous at the end); `layer_inputs`, the
// inputs of the layers with a kernel that feed some sites; `precomputed`,
// the per-unit sums of the sites whose values were already read elsewhere
// (by KerasDeadreluReluGradUnitSums, in the step's backward pass): positive
// count (units), absolute sum (units), rows. Site i takes the next tensor of
// `values` when precomputed_of[i] is -1, else precomputed[precomputed_of[i]]
// (no moments; its positive count was taken over every row).
// Output, float64, site after site:
//   positive count (units), absolute sum (units),
//   [value sum (units), square sum (units)]        if moments
//   rows                                           (values per unit)
//   [rows the positive count was taken over]       if count_slot
//   [half the sum of squares of the layer input's first sample, its size]
//                                                  if input_of >= 0
// With first_sample_only, the positive count is taken over the first
// sample's rows (rows / dim 0) only. NaN is never counted as positive and
// makes the absolute sum NaN. Sums are float32 over blocks of rows, then
// float64, so counts stay exact.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace keras_deadrelu {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

// A site's values are summed in shards of at least 2**kShardShift values,
// one per CPU worker thread at most (small sites in the calling thread).
constexpr int kShardShift = 18;
// Rows are added in float32 in blocks of this many, then in float64.
constexpr int64_t kBlockRows = 1024;

struct SiteSpec {
  int64_t units;
  bool moments;
  bool count_slot;
  bool first_sample_only;
  int64_t input_of;
  int64_t precomputed_of;

  int64_t Size() const {
    return units * (moments ? 4 : 2) + 1 + (count_slot ? 1 : 0) +
           (input_of >= 0 ? 2 : 0);
  }
};

absl::Status ReadSpecs(const std::vector<int64_t>& units,
                       const std::vector<bool>& moments,
                       const std::vector<bool>& count_slot,
                       const std::vector<bool>& first_sample_only,
                       const std::vector<int64_t>& input_of,
                       const std::vector<int64_t>& precomputed_of, int64_t n,
                       int64_t m, int64_t k, std::vector<SiteSpec>* specs) {
  const size_t sites = units.size();
  if (moments.size() != sites || count_slot.size() != sites ||
      first_sample_only.size() != sites || input_of.size() != sites ||
      precomputed_of.size() != sites) {
    return absl::InvalidArgumentError(
        "KerasDeadreluUnitSums: every attribute list needs one entry per "
        "site");
  }
  if (static_cast<int64_t>(std::count(precomputed_of.begin(),
                                      precomputed_of.end(), -1)) != n) {
    return absl::InvalidArgumentError(
        "KerasDeadreluUnitSums: one value tensor is needed per site not "
        "precomputed");
  }
  for (size_t i = 0; i < sites; ++i) {
    if (units[i] < 1) {
      return absl::InvalidArgumentError("KerasDeadreluUnitSums: units < 1");
    }
    if (input_of[i] < -1 || input_of[i] >= m) {
      return absl::InvalidArgumentError(
          "KerasDeadreluUnitSums: input_of names a missing layer input");
    }
    if (precomputed_of[i] < -1 || precomputed_of[i] >= k ||
        (precomputed_of[i] >= 0 && moments[i])) {
      return absl::InvalidArgumentError(
          "KerasDeadreluUnitSums: precomputed_of names a missing precomputed "
          "tensor, or a site with moments");
    }
    specs->push_back({units[i], static_cast<bool>(moments[i]),
                      static_cast<bool>(count_slot[i]),
                      static_cast<bool>(first_sample_only[i]), input_of[i],
                      precomputed_of[i]});
  }
  return absl::OkStatus();
}

// Sums over `rows` rows of `width` values into `sums` (width per term):
// [count of x > 0,] |x| [, x, x * x].
template <bool kCount, bool kMoments>
void AddRows(const float* __restrict__ values, int64_t rows, int64_t width,
             float* __restrict__ sums) {
  float* __restrict__ count = sums;
  float* __restrict__ absolute = sums + (kCount ? width : 0);
  float* __restrict__ value = absolute + width;
  float* __restrict__ square = value + width;
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict__ row = values + r * width;
    for (int64_t u = 0; u < width; ++u) {
      const float x = row[u];
      if (kCount) count[u] += x > 0.0f ? 1.0f : 0.0f;
      absolute[u] += std::fabs(x);
      if (kMoments) {
        value[u] += x;
        square[u] += x * x;
      }
    }
  }
}

void AddRowsOf(bool count, bool moments, const float* values, int64_t rows,
               int64_t width, float* sums) {
  if (count) {
    moments ? AddRows<true, true>(values, rows, width, sums)
            : AddRows<true, false>(values, rows, width, sums);
  } else {
    moments ? AddRows<false, true>(values, rows, width, sums)
            : AddRows<false, false>(values, rows, width, sums);
  }
}

// Adds `rows` rows of `width` values to `totals` (float64, width per term):
// in float32 over blocks of at most kBlockRows rows, so that rounding stays
// that of a short float32 sum however many rows there are. `scratch` holds
// terms * width floats.
void AddRowsInBlocks(bool count, bool moments, const float* values,
                     int64_t rows, int64_t width, int terms, float* scratch,
                     double* totals) {
  for (int64_t first = 0; first < rows; first += kBlockRows) {
    const int64_t block = std::min(kBlockRows, rows - first);
    std::fill(scratch, scratch + terms * width, 0.0f);
    AddRowsOf(count, moments, values + first * width, block, width, scratch);
    for (int64_t j = 0; j < terms * width; ++j) totals[j] += scratch[j];
  }
}

class UnitSumsOp : public OpKernel {
 public:
  explicit UnitSumsOp(OpKernelConstruction* context) : OpKernel(context) {
    std::vector<int64_t> units, input_of, precomputed_of;
    std::vector<bool> moments, count_slot, first_sample_only;
    int64_t n = 0, m = 0, k = 0;
    OP_REQUIRES_OK(context, context->GetAttr("units", &units));
    OP_REQUIRES_OK(context, context->GetAttr("moments", &moments));
    OP_REQUIRES_OK(context, context->GetAttr("count_slot", &count_slot));
    OP_REQUIRES_OK(context,
                   context->GetAttr("first_sample_only", &first_sample_only));
    OP_REQUIRES_OK(context, context->GetAttr("input_of", &input_of));
    OP_REQUIRES_OK(context,
                   context->GetAttr("precomputed_of", &precomputed_of));
    OP_REQUIRES_OK(context, context->GetAttr("N", &n));
    OP_REQUIRES_OK(context, context->GetAttr("M", &m));
    OP_REQUIRES_OK(context, context->GetAttr("K", &k));
    OP_REQUIRES_OK(context, ReadSpecs(units, moments, count_slot,
                                      first_sample_only, input_of,
                                      precomputed_of, n, m, k, &specs_));
  }

  void Compute(OpKernelContext* context) override {
    tensorflow::OpInputList values, layer_inputs, precomputed;
    OP_REQUIRES_OK(context, context->input_list("values", &values));
    OP_REQUIRES_OK(context, context->input_list("layer_inputs", &layer_inputs));
    OP_REQUIRES_OK(context, context->input_list("precomputed", &precomputed));
    int64_t total = 0;
    for (const SiteSpec& spec : specs_) total += spec.Size();
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({total}),
                                                     &output));
    double* out = output->flat<double>().data();
    auto* workers = context->device()->tensorflow_cpu_worker_threads();
    int next_value = 0;
    for (size_t i = 0; i < specs_.size(); ++i) {
      const SiteSpec& spec = specs_[i];
      if (spec.precomputed_of >= 0) {
        const Tensor& block = precomputed[spec.precomputed_of];
        OP_REQUIRES(context, block.NumElements() == 2 * spec.units + 1,
                    absl::InvalidArgumentError(
                        "KerasDeadreluUnitSums: a precomputed tensor's size "
                        "is not 2 * units + 1"));
        const double* numbers = block.flat<double>().data();
        out = std::copy(numbers, numbers + 2 * spec.units + 1, out);
        if (spec.count_slot) *out++ = numbers[2 * spec.units];
        out = AddInputTerms(spec, layer_inputs, out);
        continue;
      }
      const Tensor& tensor = values[next_value++];
      OP_REQUIRES(context, tensor.dims() >= 1,
                  absl::InvalidArgumentError(
                      "KerasDeadreluUnitSums: a site's values need a batch "
                      "axis"));
      const int64_t size = tensor.NumElements();
      OP_REQUIRES(context, size % spec.units == 0,
                  absl::InvalidArgumentError(
                      "KerasDeadreluUnitSums: a site's values do not divide "
                      "into its units"));
      const int64_t units = spec.units, rows = size / units;
      const int64_t batch = tensor.dim_size(0);
      OP_REQUIRES(context,
                  !spec.first_sample_only || batch == 0 || rows % batch == 0,
                  absl::InvalidArgumentError(
                      "KerasDeadreluUnitSums: first_sample_only needs a whole "
                      "number of rows per sample"));
      const int64_t counted =
          spec.first_sample_only ? (batch > 0 ? rows / batch : 0) : rows;
      const float* data = tensor.flat<float>().data();
      std::vector<double> sums((spec.moments ? 4 : 2) * units, 0.0);

      // Long inner loops: see the first rows / k * k rows as wide rows of
      // k * units values (k a power of two), then fold the k parts; the
      // rows left over are added apart.
      int64_t k = 1;
      while (k * units < 512 && 2 * k <= rows) k *= 2;
      const int64_t width = k * units, wide_rows = rows / k;
      const bool count_all = !spec.first_sample_only;
      const int terms = (count_all ? 1 : 0) + (spec.moments ? 3 : 1);
      const int64_t shards = std::max<int64_t>(
          1, std::min<int64_t>(workers->num_threads, size >> kShardShift));
      std::vector<double> parts(shards * terms * width, 0.0);
      auto add_shards = [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(terms * width);
        for (int64_t s = begin; s < end; ++s) {
          const int64_t first = wide_rows * s / shards;
          const int64_t last = wide_rows * (s + 1) / shards;
          AddRowsInBlocks(count_all, spec.moments, data + first * width,
                          last - first, width, terms, scratch.data(),
                          parts.data() + s * terms * width);
        }
      };
      if (shards == 1) {
        add_shards(0, 1);
      } else {
        tensorflow::Shard(workers->num_threads, workers->workers, shards,
                          /*cost_per_unit=*/int64_t{1} << 30, add_shards);
      }
      std::vector<double> rest(terms * units, 0.0);
      {
        std::vector<float> scratch(terms * units);
        AddRowsInBlocks(count_all, spec.moments, data + wide_rows * width,
                        rows - wide_rows * k, units, terms, scratch.data(),
                        rest.data());
      }
      // Fold shards, wide-row parts and the rest: term t of unit u.
      const int first_term = count_all ? 0 : 1;
      for (int t = 0; t < terms; ++t) {
        double* target = sums.data() + (first_term + t) * units;
        for (int64_t u = 0; u < units; ++u) target[u] += rest[t * units + u];
        for (int64_t s = 0; s < shards; ++s) {
          const double* part = parts.data() + (s * terms + t) * width;
          for (int64_t j = 0; j < k; ++j) {
            for (int64_t u = 0; u < units; ++u) target[u] += part[j * units + u];
          }
        }
      }
      if (!count_all) {
        for (int64_t r = 0; r < counted; ++r) {
          const float* row = data + r * units;
          for (int64_t u = 0; u < units; ++u) sums[u] += row[u] > 0.0f ? 1 : 0;
        }
      }
      out = std::copy(sums.begin(), sums.end(), out);
      *out++ = static_cast<double>(rows);
      if (spec.count_slot) *out++ = static_cast<double>(counted);
      out = AddInputTerms(spec, layer_inputs, out);
    }
  }

 private:
  // Writes half the sum of squares of the first sample of the site's layer
  // input, and that sample's size, where the site has one; returns the next
  // place to write.
  static double* AddInputTerms(const SiteSpec& spec,
                               const tensorflow::OpInputList& layer_inputs,
                               double* out) {
    if (spec.input_of < 0) return out;
    const Tensor& input = layer_inputs[spec.input_of];
    const int64_t input_batch = input.dims() >= 1 ? input.dim_size(0) : 0;
    const int64_t sample_size =
        input_batch > 0 ? input.NumElements() / input_batch : 0;
    const float* sample = input.flat<float>().data();
    double square_sum = 0.0;
    for (int64_t j = 0; j < sample_size; ++j) {
      square_sum += static_cast<double>(sample[j]) * sample[j];
    }
    *out++ = 0.5 * square_sum;
    *out++ = static_cast<double>(sample_size);
    return out;
  }


  std::vector<SiteSpec> specs_;
};

REGISTER_OP("KerasDeadreluUnitSums")
    .Input("values: N * float")
    .Input("layer_inputs: M * float")
    .Input("precomputed: K * double")
    .Attr("N: int >= 0")
    .Attr("M: int >= 0")
    .Attr("K: int >= 0")
    .Attr("units: list(int)")
    .Attr("moments: list(bool)")
    .Attr("count_slot: list(bool)")
    .Attr("first_sample_only: list(bool)")
    .Attr("input_of: list(int)")
    .Attr("precomputed_of: list(int)")
    .Output("sums: double")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      std::vector<int64_t> units, input_of, precomputed_of;
      std::vector<bool> moments, count_slot, first_sample_only;
      int64_t n = 0, m = 0, k = 0;
      TF_RETURN_IF_ERROR(context->GetAttr("units", &units));
      TF_RETURN_IF_ERROR(context->GetAttr("moments", &moments));
      TF_RETURN_IF_ERROR(context->GetAttr("count_slot", &count_slot));
      TF_RETURN_IF_ERROR(
          context->GetAttr("first_sample_only", &first_sample_only));
      TF_RETURN_IF_ERROR(context->GetAttr("input_of", &input_of));
      TF_RETURN_IF_ERROR(context->GetAttr("precomputed_of", &precomputed_of));
      TF_RETURN_IF_ERROR(context->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(context->GetAttr("M", &m));
      TF_RETURN_IF_ERROR(context->GetAttr("K", &k));
      std::vector<SiteSpec> specs;
      TF_RETURN_IF_ERROR(ReadSpecs(units, moments, count_slot,
                                   first_sample_only, input_of,
                                   precomputed_of, n, m, k, &specs));
      int64_t total = 0;
      for (const SiteSpec& spec : specs) total += spec.Size();
      context->set_output(0, context->Vector(total));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(
    Name("KerasDeadreluUnitSums").Device(tensorflow::DEVICE_CPU), UnitSumsOp);

}  // namespace
}  // namespace keras_deadrelu
