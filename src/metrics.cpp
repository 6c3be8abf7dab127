#include "siamese/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "siamese/common.hpp"
#include "siamese/gallery.hpp"
#include "siamese/rules.hpp"

namespace siamese {

std::vector<float> pair_distances(const std::vector<float>& emb, int E, const PairSet& pairs) {
    std::vector<float> d(pairs.size());
    for (int i = 0; i < pairs.size(); ++i) {
        const float* a = emb.data() + size_t(pairs.a[i]) * E;
        const float* b = emb.data() + size_t(pairs.b[i]) * E;
        double s = 0;
        for (int k = 0; k < E; ++k) s += double(a[k] - b[k]) * double(a[k] - b[k]);
        d[i] = float(safe_distance(s));  // the loss's safe sqrt
    }
    return d;
}

double accuracy_at(const std::vector<float>& d, const std::vector<float>& y, double t) {
    if (d.empty()) return 0;
    size_t right = 0;
    for (size_t i = 0; i < d.size(); ++i) right += (d[i] < t) == (y[i] > 0.5f);
    return double(right) / double(d.size());
}

namespace {
// Indices sorted by distance.
std::vector<size_t> by_distance(const std::vector<float>& d) {
    std::vector<size_t> o(d.size());
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return d[a] < d[b]; });
    return o;
}
}  // namespace

double best_threshold(const std::vector<float>& d, const std::vector<float>& y) {
    if (d.empty()) return 0.5;
    const auto o = by_distance(d);
    // Threshold below everything: all impostor-called; right = number of impostors.
    long right = 0;
    for (float v : y) right += v <= 0.5f;
    long best = right;
    double best_t = double(d[o[0]]) - 1e-6;
    for (size_t k = 0; k < o.size(); ++k) {
        right += y[o[k]] > 0.5f ? 1 : -1;  // pair k moves to "genuine"
        if (k + 1 < o.size() && d[o[k + 1]] == d[o[k]]) continue;  // ties move together
        if (right > best) {
            best = right;
            best_t = k + 1 < o.size() ? 0.5 * (double(d[o[k]]) + double(d[o[k + 1]])) : double(d[o[k]]) + 1e-6;
        }
    }
    return best_t;
}

double roc_auc(const std::vector<float>& d, const std::vector<float>& y) {
    // Mann-Whitney U with average ranks for ties: genuine pairs should have the smaller d.
    const auto o = by_distance(d);
    double rank_sum_imp = 0;
    long n_gen = 0, n_imp = 0;
    for (size_t k = 0; k < o.size();) {
        size_t e = k;
        while (e < o.size() && d[o[e]] == d[o[k]]) ++e;
        const double avg_rank = 0.5 * double(k + 1 + e);  // ranks k+1..e
        for (size_t j = k; j < e; ++j)
            if (y[o[j]] <= 0.5f) rank_sum_imp += avg_rank;
        k = e;
    }
    for (float v : y) (v > 0.5f ? n_gen : n_imp)++;
    if (n_gen == 0 || n_imp == 0) return std::numeric_limits<double>::quiet_NaN();
    const double u = rank_sum_imp - double(n_imp) * double(n_imp + 1) / 2.0;  // impostor-above-genuine count
    return u / (double(n_gen) * double(n_imp));
}

std::vector<RocPoint> roc_points(const std::vector<float>& d, const std::vector<float>& y) {
    const auto o = by_distance(d);
    long n_gen = 0, n_imp = 0;
    for (float v : y) (v > 0.5f ? n_gen : n_imp)++;
    std::vector<RocPoint> pts;
    if (n_gen == 0 || n_imp == 0) return pts;
    long acc_gen = 0, acc_imp = 0;  // accepted (d < t)
    pts.push_back({o.empty() ? 0.0 : double(d[o[0]]), 0.0, 1.0});
    for (size_t k = 0; k < o.size(); ++k) {
        (y[o[k]] > 0.5f ? acc_gen : acc_imp)++;
        if (k + 1 < o.size() && d[o[k + 1]] == d[o[k]]) continue;
        const double t = k + 1 < o.size() ? 0.5 * (double(d[o[k]]) + double(d[o[k + 1]])) : double(d[o[k]]) + 1e-6;
        pts.push_back({t, double(acc_imp) / n_imp, 1.0 - double(acc_gen) / n_gen});
    }
    return pts;
}

double equal_error_rate(const std::vector<float>& d, const std::vector<float>& y) {
    const auto pts = roc_points(d, y);
    if (pts.empty()) return std::numeric_limits<double>::quiet_NaN();
    double best_gap = 2, eer = 1;
    for (const auto& p : pts) {
        const double gap = std::fabs(p.far - p.frr);
        if (gap < best_gap) {
            best_gap = gap;
            eer = 0.5 * (p.far + p.frr);
        }
    }
    return eer;
}

double tar_at_far(const std::vector<float>& d, const std::vector<float>& y, double far) {
    double best = 0;
    for (const auto& p : roc_points(d, y))
        if (p.far <= far) best = std::max(best, 1.0 - p.frr);
    return best;
}

double tutorial_metric(const std::vector<float>& d, const std::vector<float>& y) {
    long called = 0, right = 0;
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i] < 0.5f) {
            ++called;
            right += y[i] > 0.5f;
        }
    return called ? double(right) / double(called) : 0.0;
}

double oneshot_accuracy(const std::vector<float>& emb, int E, const ImageBank& bank, const std::vector<int>& people,
                        int draws, uint64_t seed) {
    // N-way one-shot = closed-set identification with one enrolled photo per person and every
    // other photo of the same people as a probe: the gallery's rule, not a copy of it.
    if (people.empty() || draws < 1) return std::numeric_limits<double>::quiet_NaN();
    const IdentifyReport r = identify_on_bank(emb, E, bank, people, people, 1, draws, seed, false);
    return r.known_probes ? r.rank1 : std::numeric_limits<double>::quiet_NaN();
}

TestReport evaluate_pairs(const std::vector<float>& d, const std::vector<float>& y, double threshold) {
    TestReport r;
    r.pairs = int(d.size());
    for (float v : y) r.genuine += v > 0.5f;
    r.accuracy = accuracy_at(d, y, 0.5);
    r.accuracy_at_threshold = accuracy_at(d, y, threshold);
    r.auc = roc_auc(d, y);
    r.eer = equal_error_rate(d, y);
    r.tar_far1 = tar_at_far(d, y, 1e-2);
    r.tar_far01 = tar_at_far(d, y, 1e-3);
    r.tutorial_metric = tutorial_metric(d, y);
    return r;
}

TestReport embedding_report(const std::vector<float>& emb, int E, const ImageBank& bank, const PairSet& pairs,
                            double threshold, const std::vector<int>& oneshot_people, int draws, uint64_t seed) {
    TestReport r = evaluate_pairs(pair_distances(emb, E, pairs), pairs.label, threshold);
    r.sampled_from = pairs.sampled_from;
    if (!oneshot_people.empty()) {
        r.oneshot_accuracy = oneshot_accuracy(emb, E, bank, oneshot_people, draws, seed);
        r.oneshot_draws = draws;
    }
    return r;
}

nlohmann::json report_to_json(const TestReport& r) {
    nlohmann::json j = {{"pairs", r.pairs},
                        {"genuine_pairs", r.genuine},
                        {"accuracy", r.accuracy},
                        {"accuracy_at_threshold", r.accuracy_at_threshold},
                        {"auc", r.auc},
                        {"eer", r.eer},
                        {"tar_at_far_1pct", r.tar_far1},
                        {"tar_at_far_0.1pct", r.tar_far01},
                        {"tutorial_metric", r.tutorial_metric}};
    if (r.oneshot_accuracy >= 0) {
        j["oneshot_accuracy"] = r.oneshot_accuracy;
        j["oneshot_draws"] = r.oneshot_draws;
    }
    if (r.sampled_from > 0) j["pairs_sampled_from"] = r.sampled_from;
    return j;
}

void print_report(const TestReport& r, double threshold) {
    if (r.sampled_from > 0)
        std::printf("test pairs %d (%d genuine), a seeded uniform sample of all %lld\n", r.pairs, r.genuine,
                    r.sampled_from);
    else
        std::printf("test pairs %d (%d genuine)\n", r.pairs, r.genuine);
    std::printf("  accuracy at d < 0.5          %.4f\n", r.accuracy);
    char at_threshold[48];
    std::snprintf(at_threshold, sizeof at_threshold, "accuracy at threshold %.3f", threshold);
    std::printf("  %-28s %.4f\n", at_threshold, r.accuracy_at_threshold);
    std::printf("  ROC AUC                      %.4f\n", r.auc);
    std::printf("  EER                          %.4f\n", r.eer);
    std::printf("  TAR at FAR 1%% / 0.1%%         %.4f / %.4f  (genuine pairs accepted when 1%% / 0.1%% of impostors are)\n",
                r.tar_far1, r.tar_far01);
    std::printf("  tutorial_metric              %.4f  (precision of 'genuine' at d < 0.5, the tutorial's \"accuracy\")\n",
                r.tutorial_metric);
    if (r.oneshot_accuracy >= 0)
        std::printf("  one-shot identification      %.4f  (mean of %d draws)\n", r.oneshot_accuracy, r.oneshot_draws);
}

}  // namespace siamese
