// keras-deadrelu: a ReLU's gradient that also takes the ReLU's per-unit sums.
//
// A streaming monitor must read every value a ReLU site outputs once per
// step. The training step already reads them once more: the ReLU's gradient
// (TensorFlow's ReluGrad) reads the outputs to know where to pass the
// incoming gradient. This op does both in that one pass: it computes what
// ReluGrad computes and, from the values it reads anyway, each unit's count
// of values > 0 and sum of values. On a convnet, where one extra read of the
// conv outputs was all the monitor's cost, the step then reads nothing more.
//
// Inputs: `gradients` (the incoming gradient) and `features` (the ReLU's
// outputs), float32, of one shape, seen as a (rows, units) matrix (units
// contiguous at the end).
// Outputs: `backprops`, gradients * (features > 0), as ReluGrad computes
// them (NaN features pass nothing); `sums`, float64: positive count (units),
// sum of the values (units; NaN or inf shows there), rows. Sums are float32
// over blocks of rows, then float64, so counts stay exact.
#include <algorithm>
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

// Values are split in shards of at least 2**kShardShift, one per CPU worker
// thread at most (small tensors in the calling thread).
constexpr int kShardShift = 16;
// Rows are added in float32 in blocks of this many, then in float64.
constexpr int64_t kBlockRows = 1024;

// For `rows` rows of `width` values: backprop = gradient where the value is
// > 0, else 0; and per column, the count of values > 0 and their sum, added
// to `totals` (2 * width doubles). `scratch` holds 2 * width floats.
void PassRows(const float* __restrict__ gradients,
              const float* __restrict__ features, float* __restrict__ backprops,
              int64_t rows, int64_t width, float* __restrict__ scratch,
              double* __restrict__ totals) {
  for (int64_t first = 0; first < rows; first += kBlockRows) {
    const int64_t last = std::min(rows, first + kBlockRows);
    std::fill(scratch, scratch + 2 * width, 0.0f);
    float* __restrict__ count = scratch;
    float* __restrict__ sum = scratch + width;
    for (int64_t r = first; r < last; ++r) {
      const float* __restrict__ value = features + r * width;
      const float* __restrict__ gradient = gradients + r * width;
      float* __restrict__ backprop = backprops + r * width;
      // No dependence between values: `backprops` may be `gradients` itself
      // (the input's buffer forwarded), read and written at the same place;
      // without the pragma GCC checks for overlap at run time, finds it,
      // and takes the scalar loop (4x slower, measured).
#pragma GCC ivdep
      for (int64_t u = 0; u < width; ++u) {
        const float x = value[u];
        // 1 where x > 0, else 0 (NaN included): no branch, so it vectorizes.
        const float fired = static_cast<float>(x > 0.0f);
        // As ReluGrad: a product, so a NaN or inf gradient stays NaN.
        backprop[u] = gradient[u] * fired;
        count[u] += fired;
        sum[u] += x;
      }
    }
    for (int64_t j = 0; j < 2 * width; ++j) totals[j] += scratch[j];
  }
}

class ReluGradUnitSumsOp : public OpKernel {
 public:
  explicit ReluGradUnitSumsOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("units", &units_));
    OP_REQUIRES(context, units_ >= 1,
                absl::InvalidArgumentError(
                    "KerasDeadreluReluGradUnitSums: units < 1"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& gradients = context->input(0);
    const Tensor& features = context->input(1);
    OP_REQUIRES(context, gradients.shape() == features.shape(),
                absl::InvalidArgumentError(
                    "KerasDeadreluReluGradUnitSums: gradients and features "
                    "differ in shape"));
    const int64_t size = features.NumElements();
    OP_REQUIRES(context, size % units_ == 0,
                absl::InvalidArgumentError(
                    "KerasDeadreluReluGradUnitSums: the features do not "
                    "divide into units"));
    Tensor* backprops = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output(
                                {0}, 0, features.shape(), &backprops));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                1, TensorShape({2 * units_ + 1}), &output));
    const int64_t units = units_, rows = size / units;
    const float* gradient = gradients.flat<float>().data();
    const float* value = features.flat<float>().data();
    float* backprop = backprops->flat<float>().data();

    // Long inner loops: the first rows / k * k rows as wide rows of
    // k * units values (k a power of two), the k parts folded afterwards;
    // the rows left over are passed apart.
    int64_t k = 1;
    while (k * units < 512 && 2 * k <= rows) k *= 2;
    const int64_t width = k * units, wide_rows = rows / k;
    auto* workers = context->device()->tensorflow_cpu_worker_threads();
    const int64_t shards = std::max<int64_t>(
        1, std::min<int64_t>(workers->num_threads, size >> kShardShift));
    std::vector<double> parts(shards * 2 * width, 0.0);
    auto pass_shards = [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(2 * width);
      for (int64_t s = begin; s < end; ++s) {
        const int64_t first = wide_rows * s / shards * width;
        const int64_t last = wide_rows * (s + 1) / shards * width;
        PassRows(gradient + first, value + first, backprop + first,
                 (last - first) / width, width, scratch.data(),
                 parts.data() + s * 2 * width);
      }
    };
    if (shards == 1) {
      pass_shards(0, 1);
    } else {
      tensorflow::Shard(workers->num_threads, workers->workers, shards,
                        /*cost_per_unit=*/int64_t{1} << 30, pass_shards);
    }
    std::vector<double> rest(2 * units, 0.0);
    {
      std::vector<float> scratch(2 * units);
      const int64_t first = wide_rows * width;
      PassRows(gradient + first, value + first, backprop + first,
               rows - wide_rows * k, units, scratch.data(), rest.data());
    }
    double* out = output->flat<double>().data();
    for (int t = 0; t < 2; ++t) {
      double* target = out + t * units;
      for (int64_t u = 0; u < units; ++u) target[u] = rest[t * units + u];
      for (int64_t s = 0; s < shards; ++s) {
        const double* part = parts.data() + (s * 2 + t) * width;
        for (int64_t j = 0; j < k; ++j) {
          for (int64_t u = 0; u < units; ++u) target[u] += part[j * units + u];
        }
      }
    }
    out[2 * units] = static_cast<double>(rows);
  }

 private:
  int64_t units_ = 0;
};

REGISTER_OP("KerasDeadreluReluGradUnitSums")
    .Input("gradients: float")
    .Input("features: float")
    .Attr("units: int >= 1")
    .Output("backprops: float")
    .Output("sums: double")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      int64_t units = 0;
      TF_RETURN_IF_ERROR(context->GetAttr("units", &units));
      tensorflow::shape_inference::ShapeHandle shape;
      TF_RETURN_IF_ERROR(
          context->Merge(context->input(0), context->input(1), &shape));
      context->set_output(0, shape);
      context->set_output(1, context->Vector(2 * units + 1));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(
    Name("KerasDeadreluReluGradUnitSums").Device(tensorflow::DEVICE_CPU),
    ReluGradUnitSumsOp);

}  // namespace
}  // namespace keras_deadrelu
