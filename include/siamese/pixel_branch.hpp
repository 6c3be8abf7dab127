// The pixel branch of a hybrid embedding (`--pixel-branch K`): beside the network's embedding,
// whitened eigenfaces of the training people (or a metric learned on them: PixelMetric),
// L2-normalised and scaled by `weight`, appended to it. The squared distance of two images is
// then the network's plus weight^2 times the pixel one: the convolution and pooling stack
// discards pixel-level detail that a linear view of the face keeps, and on people never seen in
// training the two err on different pairs (docs/strong-recipe.md measures it). Fit in closed
// form after training, from the training people only; inference only (no gradient), on the host
// for every engine: a (dims x H*W) projection per image, small beside the network.
#pragma once
#include <vector>

#include "siamese/dataset.hpp"

namespace siamese {

struct PixelBranch {
    int dims = 0;        // 0: no pixel branch (the embedding is the network's)
    float weight = 0.0f; // scale of the unit-length pixel part
    std::vector<float> mean;   // (H*W) mean training image
    std::vector<float> basis;  // (dims, H*W) principal axes divided by their standard deviation (whitening),
                               // then (PixelMetric::Within) mixed by the within-person whitening
    bool empty() const { return dims == 0; }
};

// How the branch measures the pixels (`--pixel-metric`):
// - Pca: whitened eigenfaces of the training images (each component of unit variance over them);
// - Within: those components whitened again by the training people's within-person covariance
//   (plus `reg` on its diagonal, in the components' unit variance), each training photo's mirror
//   image counted as one more photo of its person. A learned linear metric in closed form
//   (within-class covariance normalisation): it weighs least the directions in which one
//   person's photos differ, such as light and pose, and most those in which people differ.
// Either way the branch is one linear map (basis) of the centred image, then L2-normalised.
enum class PixelMetric { Pca, Within };

// The branch fit on the images of `fit_people` (at most `components` axes: fewer when the
// images are fewer), with the given weight.
PixelBranch fit_pixel_branch(const ImageBank& bank, const std::vector<int>& fit_people, int components, float weight,
                             PixelMetric metric = PixelMetric::Pca, double reg = 0.1);

// out (n, dims) for n images (n, H, W): weight * u / |u|, u = basis (x - mean); with `flip`
// (NetConfig::flip_average) u is the mean of those of the image and of its mirror image, so an
// image and its mirror get the same bits, as in the network's part.
void pixel_branch_embed(const PixelBranch& p, const float* images, int n, int H, int W, bool flip, float* out);

// The hybrid embedding: each row of net (n, E) followed by its image's pixel part: (n, E + dims).
std::vector<float> append_pixel_branch(const PixelBranch& p, const std::vector<float>& net, int E, const float* images,
                                       int n, int H, int W, bool flip);

}  // namespace siamese
