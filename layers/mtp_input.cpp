#include "layers/mtp_input.h"

#include "kernels/ops.h"

namespace moe {

MtpInput::MtpInput(ParameterStore& store, const std::string& name, int64_t d_model, double norm_eps,
                   double init_std)
    : d_model_(d_model),
      norm_eps_(static_cast<float>(norm_eps)),
      enorm_(store.add(name + ".enorm.weight", {d_model}, Init::ones, 0.0, false)),
      hnorm_(store.add(name + ".hnorm.weight", {d_model}, Init::ones, 0.0, false)),
      eh_proj_(store, name + ".eh_proj", 2 * d_model, d_model, false, init_std) {}

void MtpInput::forward(const Tensor& emb, const Tensor& h, MtpInputSaved& saved, Tensor& out,
                       Stream& stream) const {
  const int64_t tokens = emb.dim(0);
  const DType wide = accumulation_dtype(emb.dtype());
  saved.emb = emb;
  saved.h = h;
  saved.emb_rstd = Tensor::empty({tokens}, wide, emb.device());
  saved.h_rstd = Tensor::empty({tokens}, wide, emb.device());
  saved.joined = Tensor::empty({tokens, 2 * d_model_}, emb.dtype(), emb.device());
  Tensor normed = Tensor::empty({tokens, d_model_}, emb.dtype(), emb.device());
  ops::rmsnorm_forward(emb, enorm_.compute, norm_eps_, normed, saved.emb_rstd, stream);
  ops::copy_columns(normed, 0, saved.joined, 0, d_model_, stream);
  ops::rmsnorm_forward(h, hnorm_.compute, norm_eps_, normed, saved.h_rstd, stream);
  ops::copy_columns(normed, 0, saved.joined, d_model_, d_model_, stream);
  eh_proj_.forward(saved.joined, out, stream);
}

void MtpInput::backward(const MtpInputSaved& saved, const Tensor& dout, Tensor& demb, Tensor& dh,
                        Stream& stream) const {
  const int64_t tokens = dout.dim(0);
  Tensor djoined = Tensor::empty(saved.joined.shape(), dout.dtype(), dout.device());
  eh_proj_.backward(saved.joined, dout, &djoined, false, stream);
  Tensor dnormed = Tensor::empty({tokens, d_model_}, dout.dtype(), dout.device());
  ops::copy_columns(djoined, 0, dnormed, 0, d_model_, stream);
  ops::rmsnorm_backward(dnormed, saved.emb, enorm_.compute, saved.emb_rstd, demb, enorm_.grad,
                        stream);
  ops::copy_columns(djoined, d_model_, dnormed, 0, d_model_, stream);
  ops::rmsnorm_backward(dnormed, saved.h, hnorm_.compute, saved.h_rstd, dh, hnorm_.grad, stream);
}

}  // namespace moe
