// Verification and identification figures from pair distances (smaller = more alike).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <vector>

#include "siamese/dataset.hpp"
#include "siamese/pairs.hpp"

namespace siamese {

// Euclidean distance of each pair's embeddings; emb is (n_images, E).
std::vector<float> pair_distances(const std::vector<float>& emb, int E, const PairSet& pairs);

// Fraction of pairs classified right when "genuine" means d < t.
double accuracy_at(const std::vector<float>& d, const std::vector<float>& y, double t);
// The threshold maximising accuracy (a midpoint between sorted distances; the smallest such).
double best_threshold(const std::vector<float>& d, const std::vector<float>& y);
// Area under the ROC curve with -d as score: P(d_genuine < d_impostor), ties count half.
double roc_auc(const std::vector<float>& d, const std::vector<float>& y);
// Equal error rate: where the false-accept and false-reject rates meet (their mean at the
// threshold where they are closest).
double equal_error_rate(const std::vector<float>& d, const std::vector<float>& y);
// The reference tutorial's "accuracy": labels[d < 0.5].mean(), i.e. the PRECISION of the genuine
// decision (0 when nothing is called genuine).
double tutorial_metric(const std::vector<float>& d, const std::vector<float>& y);

struct RocPoint {
    double threshold, far, frr;
};
// Every distinct threshold with its false-accept and false-reject rates (for plots).
std::vector<RocPoint> roc_points(const std::vector<float>& d, const std::vector<float>& y);

// One-shot N-way identification: for each of `draws` seeded draws, one random gallery image per
// person; every other image of those people is a probe, nearest gallery embedding wins. Mean
// accuracy over the draws.
double oneshot_accuracy(const std::vector<float>& emb, int E, const ImageBank& bank, const std::vector<int>& people,
                        int draws, uint64_t seed);

struct TestReport {
    int pairs = 0, genuine = 0;
    long long sampled_from = 0;  // > 0: the pairs are a seeded sample of this many
    double accuracy = 0, accuracy_at_threshold = 0, auc = 0, eer = 0, tutorial_metric = 0;
    double tar_far1 = 0, tar_far01 = 0;  // true accept rate at a false accept rate of 1% / 0.1%
    double oneshot_accuracy = -1;  // < 0: not computed (tutorial protocol)
    int oneshot_draws = 0;         // gallery draws the one-shot figure is the mean of
};

// The largest fraction of genuine pairs accepted (d < t) by a threshold that accepts at most a
// fraction `far` of the impostor pairs (0 when even the lowest threshold accepts more).
double tar_at_far(const std::vector<float>& d, const std::vector<float>& y, double far);

TestReport evaluate_pairs(const std::vector<float>& d, const std::vector<float>& y, double threshold);

// The test figures of embeddings (n_images, E) of the bank on `pairs` (host distances), with
// one-shot over `oneshot_people` (none when empty) from `draws` seeded gallery draws: how `cv`,
// `eval --baselines` and a run's summary rate the learned model and the no-learning baselines.
TestReport embedding_report(const std::vector<float>& emb, int E, const ImageBank& bank, const PairSet& pairs,
                            double threshold, const std::vector<int>& oneshot_people, int draws, uint64_t seed);

// The test figures as the "test" object of summary.json (and `eval --json`), and as printed lines.
nlohmann::json report_to_json(const TestReport& r);
void print_report(const TestReport& r, double threshold);

}  // namespace siamese
