#include "siamese/cv.hpp"

#include <algorithm>
#include <chrono>
#include <random>

#include "siamese/backend.hpp"
#include "siamese/baselines.hpp"
#include "siamese/pixel_branch.hpp"
#include "siamese/common.hpp"
#include "siamese/run.hpp"
#include "siamese/synth.hpp"

namespace siamese {

std::vector<int> cv_fold_people(int n, int folds, int f) {
    std::vector<int> v;
    for (int p = int(long(f) * n / folds); p < int(long(f + 1) * n / folds); ++p) v.push_back(p);
    return v;
}

CvMethod evaluate_embeddings(const std::string& name, const std::vector<float>& emb, int E, const ImageBank& bank,
                             const PairSplit& split, double threshold, uint64_t seed) {
    CvMethod m;
    m.name = name;
    m.test = embedding_report(emb, E, bank, split.test, threshold, split.test_people, kDefaultDraws, seed);
    const std::vector<int> gallery(split.test_people.begin(), split.test_people.begin() + (split.test_people.size() + 1) / 2);
    m.ident = identify_on_bank(emb, E, bank, gallery, split.test_people, 1, kDefaultDraws, seed, false);
    return m;
}

std::vector<CvFold> run_cv(const CvSpec& spec, CvObserver& observer) {
    RecipeOptions a = spec.recipe;
    a.protocol = "people";
    a.train_people.clear();
    a.test_people.clear();
    if (const std::string p = recipe_problem(a); !p.empty()) throw UsageError(p);
    const Preprocess pp = preprocess_of(a);
    const ImageBank bank = load_bank(a, pp);
    const int n = int(bank.people.size());
    if (n < 4)
        throw UsageError("cv: " + std::to_string(n) + " people; cross-validation needs at least 4 (two folds of two " +
                         "test people each)");
    if (spec.folds < 2 || spec.folds > n / 2)
        throw UsageError("--folds " + std::to_string(spec.folds) + ": must be 2.." + std::to_string(n / 2) + " for " +
                         std::to_string(n) + " people (at least two test people a fold)");
    const EngineOptions engine = engine_options(spec.engine);
    std::vector<CvFold> out;
    for (int f = 0; f < spec.folds; ++f) {
        CvFold fold;
        fold.fold = f + 1;
        fold.test_people = cv_fold_people(n, spec.folds, f);
        std::vector<int> train;
        for (int p = 0; p < n; ++p)
            if (std::find(fold.test_people.begin(), fold.test_people.end(), p) == fold.test_people.end()) train.push_back(p);
        if (spec.val_people > 0) {
            if (int(train.size()) - spec.val_people < 2)
                throw UsageError("--val-people " + std::to_string(spec.val_people) + ": leaves fewer than 2 of the fold's " +
                                 std::to_string(train.size()) + " training people to train on");
            // A seeded draw (Fisher-Yates on mt19937_64, the same on every platform), then
            // removed from the training people.
            std::mt19937_64 r(a.seed * 0x9E3779B97F4A7C15ull + uint64_t(f));
            std::vector<int> pool = train;
            for (int k = 0; k < spec.val_people; ++k) std::swap(pool[k], pool[k + int(r() % uint64_t(pool.size() - k))]);
            fold.val_people.assign(pool.begin(), pool.begin() + spec.val_people);
            std::sort(fold.val_people.begin(), fold.val_people.end());
            train.erase(std::remove_if(train.begin(), train.end(),
                                       [&](int p) {
                                           return std::binary_search(fold.val_people.begin(), fold.val_people.end(), p);
                                       }),
                        train.end());
        }
        observer.fold_started(f + 1, spec.folds, fold.test_people);
        const PairSplit split = make_people_pairs(bank, train, fold.test_people, a.seed);
        const Recipe h = make_recipe(a, bank.height, bank.width, steps_per_epoch(a, split));
        auto backend = make_backend(h, engine);
        fold.device = backend->name();
        if (f == 0) note_cpu_engine_flags(fold.device, spec.engine);
        backend->upload_images(bank);
        backend->set_params(glorot_init(backend->layout(), a.seed));
        TrainCallbacks cb;
        double seconds = 0;
        cb.on_epoch = [&](const EpochStats& s) {
            seconds += s.seconds;
            observer.epoch(f + 1, s);
        };
        const TrainResult res = with_pixel_branch(*backend, a, bank, split, train_model(*backend, split, h, TrainOptions{}, cb));
        fold.seconds_per_epoch = seconds / std::max(1, a.epochs);
        const std::vector<float> emb = backend->embed_bank();
        fold.methods.push_back(evaluate_embeddings("learned", emb, backend->embed_dim(), bank, split, res.threshold, a.seed));
        if (!fold.val_people.empty()) {
            PairSplit val;
            val.test = all_pairs(bank, fold.val_people, a.seed);
            val.test_people = fold.val_people;
            fold.methods.push_back(evaluate_embeddings("validation", emb, backend->embed_dim(), bank, val, res.threshold, a.seed));
        }
        if (spec.baselines) {
            // Thresholds of the baselines from the same validation pairs (training people).
            auto with_threshold = [&](const std::string& name, const std::vector<float>& e, int E) {
                const std::vector<float> dv = pair_distances(e, E, split.val);
                const double t = dv.empty() ? 0.5 : best_threshold(dv, split.val.label);
                fold.methods.push_back(evaluate_embeddings(name, e, E, bank, split, t, a.seed));
            };
            with_threshold("pixels", pixel_embeddings(bank), bank.image_elems());
            int k = 0;
            const std::vector<float> eig = eigenface_embeddings(bank, train, spec.pca_components, &k);
            with_threshold("eigenfaces", eig, k);
        }
        observer.fold_done(fold);
        out.push_back(std::move(fold));
    }
    return out;
}

}  // namespace siamese
