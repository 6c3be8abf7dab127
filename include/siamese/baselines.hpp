// What no learning gets, for every evaluation to be measured against (`cv`, `eval --baselines`):
// nearest neighbour on the raw pixels, and on eigenfaces (PCA fit on the training people only).
#pragma once
#include <vector>

#include "siamese/dataset.hpp"

namespace siamese {

// The raw pixels as embeddings: (n_images, H*W).
std::vector<float> pixel_embeddings(const ImageBank& bank);

// Eigenfaces: the bank's images projected on the top `components` principal axes of the images
// of `fit_people` (mean removed): (n_images, k), k = min(components, fit images - 1). The axes
// come from the fit images' Gram matrix by subspace iteration (at most kMaxPcaImages images, a
// seeded sample beyond that, so the fit stays seconds for any data set). *k_out gets k.
constexpr int kMaxPcaImages = 2000;
std::vector<float> eigenface_embeddings(const ImageBank& bank, const std::vector<int>& fit_people, int components,
                                        int* k_out);

// The eigenface fit behind eigenface_embeddings: the fit images' mean (D), the unit principal
// axes (k x D, row-major, largest variance first) and each axis's variance (eigenvalue / (m-1)).
struct Eigenfaces {
    int D = 0, k = 0;
    std::vector<double> mean, axes, variance;
};
Eigenfaces fit_eigenfaces(const ImageBank& bank, const std::vector<int>& fit_people, int components);

// Eigen-decomposition of a symmetric n x n matrix a (row-major, destroyed) by cyclic Jacobi:
// eigenvalues (descending) into w, eigenvectors as the COLUMNS of v (n x n). For small n.
void symmetric_eigen(std::vector<double>& a, int n, std::vector<double>& w, std::vector<double>& v);

}  // namespace siamese
