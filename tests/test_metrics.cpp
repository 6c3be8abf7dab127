// Metrics against small examples worked out by hand.
#include <catch2/catch.hpp>

#include "siamese/metrics.hpp"

using namespace siamese;

TEST_CASE("hand-worked ROC, EER, accuracy and the tutorial metric", "[metrics]") {
    // d: 0.1 (genuine) 0.2 (impostor) 0.3 (genuine) 0.4 (impostor).
    // AUC: of the 4 genuine/impostor pairs only (0.3, 0.2) is ordered wrongly -> 3/4.
    // Between 0.2 and 0.3: FAR = 1/2, FRR = 1/2 -> EER 0.5.
    const std::vector<float> d = {0.1f, 0.2f, 0.3f, 0.4f}, y = {1, 0, 1, 0};
    CHECK(roc_auc(d, y) == Approx(0.75));
    CHECK(equal_error_rate(d, y) == Approx(0.5));
    CHECK(accuracy_at(d, y, 0.5) == Approx(0.5));
    CHECK(accuracy_at(d, y, 0.15) == Approx(0.75));
    CHECK(best_threshold(d, y) == Approx(0.15));  // the first of the two 3/4 thresholds
    CHECK(tutorial_metric(d, y) == Approx(0.5));  // everything called genuine: precision 2/4
    CHECK(tutorial_metric(d, {1, 1, 0, 0}) == Approx(0.5));
}

TEST_CASE("perfect separation and ties", "[metrics]") {
    const std::vector<float> d = {0.1f, 0.2f, 0.8f, 0.9f}, y = {1, 1, 0, 0};
    CHECK(roc_auc(d, y) == Approx(1.0));
    CHECK(equal_error_rate(d, y) == Approx(0.0));
    CHECK(best_threshold(d, y) == Approx(0.5));
    CHECK(accuracy_at(d, y, best_threshold(d, y)) == Approx(1.0));
    CHECK(roc_auc({0.2f, 0.2f}, {1, 0}) == Approx(0.5));  // a tie counts half
    CHECK(roc_auc({0.9f, 0.1f}, {1, 0}) == Approx(0.0));
    // tutorial metric vs accuracy: 1 genuine called right, 3 impostors all called genuine
    CHECK(tutorial_metric({0.1f, 0.2f, 0.3f, 0.4f}, {1, 0, 0, 0}) == Approx(0.25));
}

TEST_CASE("one-shot identification on hand-made embeddings", "[metrics]") {
    // 3 people x 2 images, 1-d embeddings: person p at 10p and 10p + 0.1 -> always right.
    ImageBank bank;
    bank.images_of = {{0, 1}, {2, 3}, {4, 5}};
    bank.person = {0, 0, 1, 1, 2, 2};
    bank.people = {"p0", "p1", "p2"};
    bank.files = {"a", "b", "c", "d", "e", "f"};
    std::vector<float> emb = {0, 0.1f, 10, 10.1f, 20, 20.1f};
    CHECK(oneshot_accuracy(emb, 1, bank, {0, 1, 2}, 20, 1) == Approx(1.0));
    // Person 2's second image sits among person 0's. 3 probes per draw. Gallery image 20 for
    // person 2: probe 0.05 goes to person 0, the rest right -> 2/3. Gallery 0.05: probe 20 goes
    // to person 1 (10.x is nearer) and person 0's probe is nearer 0.05 -> 1/3. Mean 1/2; over
    // 200 draws its sd is about 0.012.
    emb = {0, 0.1f, 10, 10.1f, 20, 0.05f};
    CHECK(oneshot_accuracy(emb, 1, bank, {0, 1, 2}, 200, 1) == Approx(0.5).margin(0.06));
    // One draw is 1/3 or 2/3, never the 200-draw mean: the number of draws is honoured.
    const double one = oneshot_accuracy(emb, 1, bank, {0, 1, 2}, 1, 1);
    CHECK((one == Approx(1.0 / 3) || one == Approx(2.0 / 3)));
}

TEST_CASE("pair distances from embeddings", "[metrics]") {
    PairSet p;
    p.push(0, 1, 1);
    p.push(1, 2, 0);
    const std::vector<float> emb = {0, 0, 3, 4, 3, 4};  // E = 2
    const auto d = pair_distances(emb, 2, p);
    CHECK(d[0] == Approx(5.0));
    CHECK(d[1] == Approx(std::sqrt(1e-7)));  // identical embeddings: the loss's safe sqrt
}
