// Cross-validation over people: what a user with their own people should expect. The people
// (natural order) are cut into `folds` contiguous groups; for each, a model is trained on the
// other groups' people (the recipe's options, protocol people) and tested on that group's people,
// never seen in training: all pairs among them (AUC, EER, TAR at FAR), one-shot N-way, and
// open-set identification; beside it the pixel and eigenface baselines on the same pairs and
// gallery draws.
#pragma once
#include <string>
#include <vector>

#include "siamese/gallery.hpp"
#include "siamese/metrics.hpp"
#include "siamese/run.hpp"

namespace siamese {

struct CvSpec {
    RecipeOptions recipe;  // protocol, train/test people and out are set per fold
    int folds = 4;
    bool baselines = true;
    int pca_components = 50;
    // Training people per fold held out of training and scored like the test people (the
    // method "validation"): the figure to choose a lever by, so that every choice leaves the
    // test people unseen. 0: none.
    int val_people = 0;
    EngineFlags engine;  // --profile has no effect here
};

// One method's figures on one fold.
struct CvMethod {
    std::string name;  // "learned", "pixels", "eigenfaces"
    TestReport test;
    IdentifyReport ident;
};

struct CvFold {
    int fold = 0;                   // 1-based
    std::vector<int> test_people;   // 0-based
    std::vector<int> val_people;    // 0-based, held out of training (CvSpec::val_people)
    std::vector<CvMethod> methods;  // learned first, then "validation" (if asked), then the baselines
    double seconds_per_epoch = 0;
    std::string device;
};

class CvObserver {
public:
    virtual ~CvObserver() = default;
    virtual void fold_started(int /*fold*/, int /*folds*/, const std::vector<int>& /*test_people*/) {}
    virtual void epoch(int /*fold*/, const EpochStats&) {}
    virtual void fold_done(const CvFold&) {}
};

// The people of fold f (0-based) of `folds` over n people: [f*n/folds, (f+1)*n/folds).
std::vector<int> cv_fold_people(int n, int folds, int f);

// Figures of embeddings (n_images, E) of the bank on a split's test people: pairs at the
// threshold, one-shot over the test people, and open-set identification (the first half of the
// test people enrolled with one photo each), all seeded as a training run's.
CvMethod evaluate_embeddings(const std::string& name, const std::vector<float>& emb, int E, const ImageBank& bank,
                             const PairSplit& split, double threshold, uint64_t seed);

// Throws UsageError (bad options, fewer than 2 people a fold), DataError, DeviceError.
std::vector<CvFold> run_cv(const CvSpec& spec, CvObserver& observer);

}  // namespace siamese
