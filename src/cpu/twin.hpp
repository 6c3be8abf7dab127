// The twin network on the CPU (the reference of cuda/backend_cuda.cu's training step): forward
// and backward for a batch of 2B images (the first B are the pairs' left images, the next B the
// right ones) sharing one flat parameter buffer.
// Templated on the scalar so the gradient checks run the very same code in double.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/conv.hpp"
#include "cpu/dense.hpp"
#include "cpu/dropout.hpp"
#include "cpu/embed_head.hpp"
#include "cpu/phase_clock.hpp"
#include "siamese/network.hpp"
#include "siamese/rules.hpp"
#include "siamese/tf32.hpp"

namespace siamese {

template <class T>
class CpuTwin {
public:
    explicit CpuTwin(const NetConfig& cfg) : cfg_(cfg), L_(make_layout(cfg)) {}

    const ParamLayout& layout() const { return L_; }
    // Time the phases of forward and backward into *times (null: don't).
    void set_profile(PhaseTimes* times) { times_ = times; }
    // --tf32's emulation: every dense product (forward, and both of the backward) on operands
    // cut to TF32 (siamese/tf32.hpp), as the CUDA engine's cuBLAS GEMMs read them.
    void set_tf32(bool on) { tf32_ = on; }
    int n() const { return n_; }
    // (n, E): the last dense layer's output, L2-normalised when the recipe asks for it.
    const T* embeddings() const { return cfg_.l2_normalize ? emb_.data() : dense_out_.back().data(); }

    // images[i] points at image i, (in_h, in_w). With train=true dropout is drawn from
    // Philox(seed, step); otherwise dropout is the identity.
    void forward(const T* const* images, int n, const T* params, bool train, uint64_t seed, uint64_t step) {
        resize(n);
        const int nconv = int(L_.conv.size());
        conv_dropout_on_ = train && has_conv_dropout();
        timed(times_, "conv forward (all blocks)", [&] {
#pragma omp parallel
            {
                std::vector<T> conv_buf;
#pragma omp for schedule(static)
                for (int i = 0; i < n; ++i) {
                    const T* x = images[i];
                    for (int l = 0; l < nconv; ++l) {
                        const ConvShape& s = L_.conv[l];
                        conv_buf.resize(conv_band_elems(s));
                        const size_t off = size_t(i) * s.out_elems();
                        T* act = conv_act_[l].data() + off;
                        if (conv_dropout_on_) {
                            conv_pool_forward(conv_out_[l].data() + off, conv_arg_[l].data() + off, act,
                                              conv_mask_[l].data() + off, x, params + L_.conv_w[l], params + L_.conv_b[l],
                                              s, conv_buf.data(), cfg_.conv_dropout, seed, step, kConvDropoutId + l, i);
                            x = conv_out_[l].data() + off;
                        } else {
                            conv_relu_maxpool_forward(act, conv_arg_[l].data() + off, x, params + L_.conv_w[l],
                                                      params + L_.conv_b[l], s, conv_buf.data());
                            x = act;
                        }
                    }
                }
            }
        });
        const T* x = conv_output(nconv - 1);
        for (size_t l = 0; l < L_.dense.size(); ++l) {
            const DenseShape& d = L_.dense[l];
            const bool last = l + 1 == L_.dense.size();
            timed(times_, "dense forward", [&] {
                const T* w = params + L_.dense_w[l];
                const T* xin = x;
                if (tf32_) {
                    tf32_x_.resize(L_.dense.size());
                    tf32_w_.resize(L_.dense.size());
                    xin = tf32_copy(tf32_x_[l], x, size_t(n) * d.in);
                    w = tf32_copy(tf32_w_[l], w, size_t(d.in) * d.out);
                }
                dense_forward(dense_act_[l].data(), xin, w, params + L_.dense_b[l], n, d.in, d.out,
                              !last || cfg_.embed_relu);
            });
            const float rate = train && !last ? cfg_.dense_dropout : 0.0f;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < n; ++i)
                dropout_forward(dense_out_[l].data() + size_t(i) * d.out, dense_mask_[l].data() + size_t(i) * d.out,
                                dense_act_[l].data() + size_t(i) * d.out, d.out, rate, seed, step,
                                kDenseDropoutId + uint32_t(l), i);
            x = dense_out_[l].data();
        }
        if (cfg_.l2_normalize) l2_normalize_forward(emb_.data(), norm_.data(), x, n, L_.embed_dim());
        images_.assign(images, images + n);
    }

    // demb (n, E): gradient of the loss w.r.t. the embeddings. grad (L.total) is OVERWRITTEN.
    void backward(const T* demb, const T* params, T* grad) {
        const int n = n_;
        const int nd = int(L_.dense.size());
        std::vector<T> dy(demb, demb + size_t(n) * L_.embed_dim()), dx;
        if (cfg_.l2_normalize) l2_normalize_backward(dy.data(), dy.data(), emb_.data(), norm_.data(), n, L_.embed_dim());
        for (int l = nd - 1; l >= 0; --l) {
            const DenseShape& d = L_.dense[l];
            // Through dropout and ReLU: the output is zero where either zeroed it (a linear
            // embedding layer has neither).
            if (l + 1 < nd || cfg_.embed_relu)
                relu_dropout_backward(dy.data(), dense_act_[l].data(), dense_mask_[l].data(), int(dy.size()));
            const T* x = l > 0 ? dense_out_[l - 1].data() : conv_output(int(L_.conv.size()) - 1);
            dx.resize(size_t(n) * d.in);
            timed(times_, "dense backward", [&] {
                if (!tf32_) {
                    dense_backward(dx.data(), grad + L_.dense_w[l], grad + L_.dense_b[l], dy.data(), x,
                                   params + L_.dense_w[l], n, d.in, d.out);
                    return;
                }
                // The products on the cut operands (x and W as the forward cut them); the bias
                // gradient (a column sum, FP32 on the GPU too) from dy as it is.
                const T* dyr = tf32_copy(tf32_d_, dy.data(), dy.size());
                dense_backward(dx.data(), grad + L_.dense_w[l], static_cast<T*>(nullptr), dyr, tf32_x_[l].data(),
                               tf32_w_[l].data(), n, d.in, d.out);
                dense_bias_grad(grad + L_.dense_b[l], dy.data(), n, d.out);
            });
            dy.swap(dx);
        }
        // Conv blocks, one image per iteration; each image writes its own slice of partial
        // gradients, summed afterwards in image order (deterministic for any thread count).
        const int nconv = int(L_.conv.size());
        size_t conv_params = L_.conv_b.back() + L_.conv.back().F;  // conv tensors come first
        partial_.assign(size_t(n) * conv_params, T(0));
        timed(times_, "conv backward (all blocks)", [&] {
#pragma omp parallel
            {
                std::vector<T> dconv, d_out, d_in;
#pragma omp for schedule(static)
                for (int i = 0; i < n; ++i) {
                    T* part = partial_.data() + size_t(i) * conv_params;
                    const ConvShape& top = L_.conv.back();
                    d_out.assign(dy.begin() + size_t(i) * top.out_elems(), dy.begin() + size_t(i + 1) * top.out_elems());
                    for (int l = nconv - 1; l >= 0; --l) {
                        const ConvShape& s = L_.conv[l];
                        const size_t off = size_t(i) * s.out_elems();
                        if (conv_dropout_on_)
                            for (int k = 0; k < s.out_elems(); ++k) d_out[k] *= conv_mask_[l][off + k];
                        dconv.resize(size_t(s.F) * conv_grad_elems(s));
                        relu_maxpool_backward(dconv.data(), d_out.data(), conv_act_[l].data() + off,
                                              conv_arg_[l].data() + off, s);
                        const T* in = l > 0 ? conv_output(l - 1) + size_t(i) * s.in_elems() : images_[i];
                        conv_backward_weights(part + L_.conv_w[l], part + L_.conv_b[l], dconv.data(), in, s);
                        if (l > 0) {
                            d_in.resize(s.in_elems());
                            conv_backward_input(d_in.data(), dconv.data(), params + L_.conv_w[l], s);
                            d_out.swap(d_in);
                        }
                    }
                }
#pragma omp for schedule(static)
                for (size_t j = 0; j < conv_params; ++j) {
                    T acc = 0;
                    for (int i = 0; i < n; ++i) acc += partial_[size_t(i) * conv_params + j];
                    grad[j] = acc;
                }
            }
        });
    }

private:
    // The buffers hold at least n images; they only grow. Training batches (128) and inference
    // chunks (up to 512) alternate every epoch, and growing a vector again zero-fills what it
    // adds: 1.7% of the strong recipe's time went to that memset. Every layer reads the first n.
    // Conv dropout's buffers exist only for a recipe that has it.
    void resize(int n) {
        n_ = n;
        const size_t nc = L_.conv.size(), nd = L_.dense.size();
        auto grow = [](auto& v, size_t e) {
            if (v.size() < e) v.resize(e);
        };
        conv_act_.resize(nc); conv_out_.resize(nc); conv_mask_.resize(nc); conv_arg_.resize(nc);
        for (size_t l = 0; l < nc; ++l) {
            const size_t e = size_t(n) * L_.conv[l].out_elems();
            grow(conv_act_[l], e);
            grow(conv_arg_[l], e);
            if (has_conv_dropout()) {
                grow(conv_out_[l], e);
                grow(conv_mask_[l], e);
            }
        }
        dense_act_.resize(nd); dense_out_.resize(nd); dense_mask_.resize(nd);
        for (size_t l = 0; l < nd; ++l) {
            const size_t e = size_t(n) * L_.dense[l].out;
            grow(dense_act_[l], e); grow(dense_out_[l], e); grow(dense_mask_[l], e);
        }
        if (cfg_.l2_normalize) {
            grow(emb_, size_t(n) * L_.embed_dim());
            grow(norm_, size_t(n));
        }
    }

    // in[0..count) cut to TF32 into buf (grown as needed); returns buf's data.
    static const T* tf32_copy(std::vector<T>& buf, const T* in, size_t count) {
        if (buf.size() < count) buf.resize(count);
        tf32_truncate(buf.data(), in, count);
        return buf.data();
    }

    NetConfig cfg_;
    ParamLayout L_;
    int n_ = 0;
    std::vector<const T*> images_;
    std::vector<std::vector<T>> conv_act_, conv_out_, conv_mask_;
    // Whether the last forward drew conv dropout. Without it (inference, or a recipe without
    // conv dropout) the blocks' output is their activation itself, and there is no mask: the
    // copy through a factor of 1 cost a pass over every activation each way (the strong
    // recipe's largest memory traffic), with the same values.
    bool conv_dropout_on_ = false;
    // The recipe has conv dropout: its output and mask buffers exist (resize) and training draws it.
    bool has_conv_dropout() const { return cfg_.conv_dropout > 0.0f; }
    const T* conv_output(int l) const { return (conv_dropout_on_ ? conv_out_[l] : conv_act_[l]).data(); }
    std::vector<std::vector<uint8_t>> conv_arg_;
    std::vector<std::vector<T>> dense_act_, dense_out_, dense_mask_;
    std::vector<T> partial_, emb_, norm_;
    // --tf32: each dense layer's input and weights as its forward cut them (its backward reads
    // them again), and the cut gradient of the layer being differentiated.
    std::vector<std::vector<T>> tf32_x_, tf32_w_;
    std::vector<T> tf32_d_;
    bool tf32_ = false;
    PhaseTimes* times_ = nullptr;
};

}  // namespace siamese
