// The fused tail kernel's code (cuda/tail.cu), phase by phase, as host-and-device functions: the
// kernel runs the phases with a barrier between each, and tests/test_tail_emulation.cpp runs the
// very same functions on the CPU, block by block and thread by thread, against the double
// reference: so the kernel's indexing is checked where no GPU exists. Each phase is a loop
// `for (k = tid; k < K; k += nt)` whose iterations are independent, so running the threads one
// after another is a faithful schedule; no phase uses warp intrinsics or atomics (the last-block
// ticket is the kernel's, cuda/last_block.cuh; the emulation simply runs the reduction last).
// No CUDA header: this file compiles in the CPU test suite as well.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "colsum_phases.hpp"  // the last block's reduction
#include "siamese/rules.hpp"  // relu, the dropout stream, the distance and contrastive rules

namespace siamese::tail {

// Everything a launch reads and writes. The step state's values are copied in by the kernel
// (labels offset by first, step, batch) so that the phases need no device-only type.
struct Args {
    const float* v;       // (2*count, I): the penultimate layer's GEMM output
    const float* hb;      // (I): its bias
    const float* w;       // (O, I): the last layer's weights
    const float* b;       // (O): its bias
    const float* labels;  // (count): this batch's labels
    int count, I, O, G;   // pairs, widths, pairs a block
    bool relu;            // the embedding's ReLU
    float margin, h_rate; // contrastive margin; the penultimate layer's dropout rate
    uint64_t seed, step;  // dropout stream
    uint32_t h_layer;     // its layer id
    float* gw;            // (O, I) out: the last layer's weight gradient
    float* gb;            // (O) out: its bias gradient
    float* dh;            // (2*count, I) out: gradient at the penultimate pre-activation
    float* ghb;           // (I) out: the penultimate bias gradient
    float* loss;          // out: the batch's mean loss
    float* partial;       // blocks x block_partial(I, O) scratch
};

// A block's shared memory: W padded to rows of I + 1 floats (consecutive rows in different
// banks), b, h and dh (2G, I), e and g (2G, O), the coefficient and loss term of each pair.
struct Smem {
    float *ws, *bs, *hs, *ds, *es, *gs, *cs, *ts;
    int ldw;
};
SIAMESE_HD Smem carve(float* sm, int G, int I, int O) {
    Smem s;
    s.ldw = I + 1;
    s.ws = sm;
    s.bs = s.ws + size_t(O) * s.ldw;
    s.hs = s.bs + O;
    s.ds = s.hs + size_t(2 * G) * I;
    s.es = s.ds + size_t(2 * G) * I;
    s.gs = s.es + size_t(2 * G) * O;
    s.cs = s.gs + size_t(2 * G) * O;
    s.ts = s.cs + G;
    return s;
}
// Floats of one block's partial sums: dW (O*I), db (O), dhb (I), the loss (1).
SIAMESE_HD size_t block_partial(int I, int O) { return size_t(O) * I + O + I + 1; }
// A block's slot in `partial`: block_partial rounded up to four floats, so that the reduction
// reads four columns with one 16-byte load (the padding is never read).
SIAMESE_HD size_t block_stride(int I, int O) { return (block_partial(I, O) + 3) / 4 * 4; }
// Pairs of block blk, and the global row of its local row r (< 2G): left images are rows
// 0..count-1, right images count..2count-1 (the batch layout of cuda/kernels.hpp).
SIAMESE_HD int pairs_of(const Args& a, int blk) {
    const int left = a.count - blk * a.G;
    return left < a.G ? left : a.G;
}
SIAMESE_HD int row_of(const Args& a, int blk, int r) {
    const int p0 = blk * a.G;
    return r < a.G ? p0 + r : a.count + p0 + r - a.G;
}

// 1. W and b, and h = relu(v + hb) * dropout (bias_relu_dropout_kernel's expression and Philox
//    stream: unit i of image slot `row` is word i % 4 of group i / 4); padding rows are zero.
SIAMESE_HD void load(const Args& a, const Smem& s, int blk, int tid, int nt) {
    for (int k = tid; k < a.O * a.I; k += nt) s.ws[(k / a.I) * s.ldw + k % a.I] = a.w[k];
    for (int k = tid; k < a.O; k += nt) s.bs[k] = a.b[k];
    const int pairs = pairs_of(a, blk);
    const uint64_t h_step = a.h_rate > 0.0f ? a.step : 0;
    for (int k = tid; k < 2 * a.G * a.I; k += nt) {
        const int r = k / a.I, i = k % a.I;
        float x = 0.0f;
        if (r % a.G < pairs) {
            const int row = row_of(a, blk, r);
            const DropoutGroup drop = dropout_group(a.seed, h_step, a.h_layer, uint32_t(row), uint32_t(i / 4), a.h_rate);
            x = relu(a.v[size_t(row) * a.I + i] + a.hb[i]) * drop.factor(i % 4);
        }
        s.hs[k] = x;
    }
}

// The three product phases (2, 5, 6) give each thread two rows or two outputs, so that every
// value loaded from shared memory serves two products (shared-memory loads, not arithmetic, bound
// these phases); each output's own sum keeps the order of one output a thread (the same bits).
// Outputs o and o + half(O) go together.
SIAMESE_HD int half(int n) { return (n + 1) / 2; }

// 2. e = relu?(h . W^T + b): the sum over i, then the bias (cuBLAS's GEMM then the bias kernel).
//    Thread: pair j's two rows (j and G + j) for outputs o and o + half(O).
SIAMESE_HD void forward(const Args& a, const Smem& s, int tid, int nt) {
    const int OH = half(a.O);
    for (int k = tid; k < a.G * OH; k += nt) {
        const int j = k / OH, o0 = k % OH, o1 = o0 + OH, rows[2] = {j, a.G + j};
        const bool two = o1 < a.O;
        const float *h0 = s.hs + size_t(rows[0]) * a.I, *h1 = s.hs + size_t(rows[1]) * a.I;
        const float *w0 = s.ws + size_t(o0) * s.ldw, *w1 = s.ws + size_t(two ? o1 : o0) * s.ldw;
        float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};  // [row][output]
        for (int i = 0; i < a.I; ++i) {
            const float x0 = h0[i], x1 = h1[i], u0 = w0[i], u1 = w1[i];
            acc[0][0] = fmaf(x0, u0, acc[0][0]);
            acc[0][1] = fmaf(x0, u1, acc[0][1]);
            acc[1][0] = fmaf(x1, u0, acc[1][0]);
            acc[1][1] = fmaf(x1, u1, acc[1][1]);
        }
        for (int q = 0; q < 2; ++q)
            for (int t = 0; t < (two ? 2 : 1); ++t) {
                const int o = t ? o1 : o0;
                const float e = acc[q][t] + s.bs[o];
                s.es[rows[q] * a.O + o] = a.relu ? relu(e) : e;
            }
    }
}

// 3. Each pair's distance, loss term and gradient coefficient (one thread a pair).
SIAMESE_HD void pair_terms(const Args& a, const Smem& s, int blk, int tid, int nt) {
    const int pairs = pairs_of(a, blk);
    for (int j = tid; j < pairs; j += nt) {
        float sq = 0.0f;
        for (int o = 0; o < a.O; ++o) {
            const float diff = s.es[j * a.O + o] - s.es[(a.G + j) * a.O + o];
            sq = fmaf(diff, diff, sq);
        }
        const float y = a.labels[blk * a.G + j];
        const float d = safe_distance(sq);
        s.ts[j] = contrastive_term(d, y, a.margin);
        s.cs[j] = contrastive_grad_coef(d, y, a.margin, distance_clamped(sq), a.count);
    }
}

// 4. The embedding gradient, through the embedding ReLU (e > 0: relu_dropout_backward at rate 0).
SIAMESE_HD void embed_grad(const Args& a, const Smem& s, int blk, int tid, int nt) {
    const int pairs = pairs_of(a, blk);
    for (int k = tid; k < 2 * a.G * a.O; k += nt) {
        const int r = k / a.O, o = k % a.O, j = r % a.G;
        float g = 0.0f;
        if (j < pairs) {
            const float diff = s.es[j * a.O + o] - s.es[(a.G + j) * a.O + o];
            g = (r < a.G ? s.cs[j] : -s.cs[j]) * diff;
            if (a.relu && !(s.es[k] > 0.0f)) g = 0.0f;
        }
        s.gs[k] = g;
    }
}

// 5. dh = (g . W) through h's ReLU and dropout (h > 0 exactly where the unit was kept and
//    active), kept for the bias sums and written out for the block's real rows. Thread: unit i
//    of pair j's two rows.
SIAMESE_HD void input_grad(const Args& a, const Smem& s, int blk, int tid, int nt) {
    const int pairs = pairs_of(a, blk);
    const float scale = dropout_keep_scale(a.h_rate);
    for (int k = tid; k < a.G * a.I; k += nt) {
        const int j = k / a.I, i = k % a.I, rows[2] = {j, a.G + j};
        const float *g0 = s.gs + size_t(rows[0]) * a.O, *g1 = s.gs + size_t(rows[1]) * a.O;
        float acc[2] = {0.0f, 0.0f};
        for (int o = 0; o < a.O; ++o) {
            const float u = s.ws[size_t(o) * s.ldw + i];
            acc[0] = fmaf(g0[o], u, acc[0]);
            acc[1] = fmaf(g1[o], u, acc[1]);
        }
        for (int q = 0; q < 2; ++q) {
            const size_t at = size_t(rows[q]) * a.I + i;
            const float gv = s.hs[at] > 0.0f ? acc[q] * scale : 0.0f;
            s.ds[at] = gv;
            if (j < pairs) a.dh[size_t(row_of(a, blk, rows[q])) * a.I + i] = gv;
        }
    }
}

// 6. The block's partial sums over its rows in local order (padding rows are zero), into its
//    slot of `partial`: dW, db, dhb, then the loss terms.
SIAMESE_HD void partials(const Args& a, const Smem& s, int blk, int tid, int nt) {
    float* mine = a.partial + size_t(blk) * block_stride(a.I, a.O);
    const int R = 2 * a.G, OH = half(a.O);
    for (int k = tid; k < OH * a.I; k += nt) {  // thread: dW[o][i] and dW[o + half(O)][i]
        const int o0 = k / a.I, o1 = o0 + OH, i = k % a.I;
        const bool two = o1 < a.O;
        float acc[2] = {0.0f, 0.0f};
        for (int r = 0; r < R; ++r) {
            const float x = s.hs[r * a.I + i];
            acc[0] = fmaf(s.gs[r * a.O + o0], x, acc[0]);
            acc[1] = fmaf(s.gs[r * a.O + (two ? o1 : o0)], x, acc[1]);
        }
        mine[size_t(o0) * a.I + i] = acc[0];
        if (two) mine[size_t(o1) * a.I + i] = acc[1];
    }
    for (int o = tid; o < a.O; o += nt) {
        float acc = 0.0f;
        for (int r = 0; r < R; ++r) acc += s.gs[r * a.O + o];
        mine[size_t(a.O) * a.I + o] = acc;
    }
    for (int i = tid; i < a.I; i += nt) {
        float acc = 0.0f;
        for (int r = 0; r < R; ++r) acc += s.ds[r * a.I + i];
        mine[size_t(a.O) * a.I + a.O + i] = acc;
    }
    if (tid == 0) {
        float acc = 0.0f;
        for (int j = 0; j < pairs_of(a, blk); ++j) acc += s.ts[j];
        mine[size_t(a.O) * a.I + a.O + a.I] = acc;
    }
}

// 7. In the last block: the blocks' partials (`blocks` rows of block_partial columns, row stride
//    block_stride) summed column by column by all the block's threads in colsum_phases.hpp's
//    fixed order; reduce_store puts column k's sum where it belongs.
SIAMESE_HD void reduce_store(const Args& a, int k, float acc) {
    const int OI = a.O * a.I;
    if (k < OI)
        a.gw[k] = acc;
    else if (k < OI + a.O)
        a.gb[k - OI] = acc;
    else if (k < OI + a.O + a.I)
        a.ghb[k - OI - a.O] = acc;
    else
        *a.loss = acc / float(a.count);
}

}  // namespace siamese::tail
