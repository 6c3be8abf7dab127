// siamese cv: cross-validation over people (src/cv.cpp): per fold and mean +- sd, the learned
// model beside the pixel and eigenface baselines.
#include <cmath>
#include <cstdio>
#include <map>

#include <unistd.h>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/cv.hpp"
#include "siamese/jsonio.hpp"

namespace siamese::cli {

namespace {

struct Figure {
    const char* name;
    double (*get)(const CvMethod&);
};
const Figure kFigures[] = {
    {"auc", [](const CvMethod& m) { return m.test.auc; }},
    {"eer", [](const CvMethod& m) { return m.test.eer; }},
    {"tar_far1", [](const CvMethod& m) { return m.test.tar_far1; }},
    {"tar_far01", [](const CvMethod& m) { return m.test.tar_far01; }},
    {"oneshot", [](const CvMethod& m) { return m.test.oneshot_accuracy; }},
    {"rank1", [](const CvMethod& m) { return m.ident.rank1; }},
    {"dir_far1", [](const CvMethod& m) { return m.ident.dir_far1; }},
};

struct MeanSd {
    double mean = 0, sd = 0;
};
MeanSd mean_sd(const std::vector<double>& v) {
    MeanSd r;
    if (v.empty()) return r;
    for (double x : v) r.mean += x;
    r.mean /= double(v.size());
    if (v.size() > 1) {
        for (double x : v) r.sd += (x - r.mean) * (x - r.mean);
        r.sd = std::sqrt(r.sd / double(v.size() - 1));
    }
    return r;
}

std::string people_range(const std::vector<int>& p) {
    return p.empty() ? "" : std::to_string(p.front() + 1) + "-" + std::to_string(p.back() + 1);
}

class Printer final : public CvObserver {
public:
    // The live epoch line only on a terminal: redirected to a file it would be hundreds of
    // redrawn lines with escape codes.
    explicit Printer(bool quiet) : quiet_(quiet), live_(!quiet && ::isatty(STDOUT_FILENO)) {}
    void fold_started(int fold, int folds, const std::vector<int>& people) override {
        if (!quiet_) std::printf("fold %d/%d: test people %s (never seen in training)\n", fold, folds, people_range(people).c_str());
        std::fflush(stdout);
    }
    void epoch(int, const EpochStats& s) override {
        if (!live_) return;
        std::printf("\r\033[K  epoch %d  loss %.4f  val_loss %.4f  %.2fs", s.epoch, s.train_loss, s.val_loss, s.seconds);
        std::fflush(stdout);
    }
    void fold_done(const CvFold& f) override {
        if (quiet_) return;
        if (live_) std::printf("\r\033[K");
        for (const CvMethod& m : f.methods)
            std::printf("  %-11s AUC %.4f  EER %.4f  TAR@FAR1%% %.4f  one-shot %.4f  rank-1 %.4f  DIR@FAR1%% %.4f\n",
                        m.name.c_str(), m.test.auc, m.test.eer, m.test.tar_far1, m.test.oneshot_accuracy, m.ident.rank1,
                        m.ident.dir_far1);
        if (!f.val_people.empty()) {
            std::printf("  validation people (held out of training):");
            for (int p : f.val_people) std::printf(" %d", p + 1);
            std::printf("\n");
        }
        std::printf("  %.2f s/epoch on %s\n", f.seconds_per_epoch, f.device.c_str());
        std::fflush(stdout);
    }

private:
    bool quiet_, live_;
};

}  // namespace

Runner add_cv(CLI::App& app) {
    auto* sub = app.add_subcommand("cv", "Cross-validate a recipe over people: train on the other folds' people, test on each fold's unseen people");
    auto spec = std::make_shared<CvSpec>();
    auto json = std::make_shared<bool>(false), quiet = std::make_shared<bool>(false), no_baselines = std::make_shared<bool>(false);
    add_recipe_options(sub, spec->recipe);
    sub->add_option("--folds", spec->folds, "Folds of people (contiguous in natural order; e.g. 4 on ORL: 1-10, 11-20, 21-30, 31-40)")
        ->capture_default_str()->check(CLI::Range(2, 1000));
    sub->add_flag("--no-baselines", *no_baselines, "Skip the pixel and eigenface baselines");
    sub->add_option("--val-people", spec->val_people,
                    "Hold this many of each fold's training people out of training and score them like the test people "
                    "(the row 'validation': choose levers by it, so the test people stay unseen by every choice)")
        ->capture_default_str()->check(CLI::Range(0, 1000));
    sub->add_option("--pca-components", spec->pca_components, "Eigenface baseline: principal components")
        ->capture_default_str()->check(CLI::Range(1, 4096));
    add_engine_flags(sub, spec->engine);
    sub->add_flag("--json", *json, "Print one JSON object (per fold and mean/sd of every figure) instead of the table");
    sub->add_flag("--quiet", *quiet, "Print only the summary");
    return [spec, json, quiet, no_baselines, sub]() {
        spec->baselines = !*no_baselines;
        if (sub->count("--protocol") || sub->count("--train-people") || sub->count("--test-people"))
            throw UsageError("cv chooses the train and test people itself (--folds); --protocol/--train-people/--test-people do not apply");
        if (spec->recipe.recipe == "strong") apply_strong_recipe(spec->recipe, given_recipe_options(sub));
        Printer printer(*quiet || *json);
        const std::vector<CvFold> folds = run_cv(*spec, printer);
        // method -> figure -> per-fold values
        std::vector<std::string> order;
        std::map<std::string, std::map<std::string, std::vector<double>>> values;
        for (const CvFold& f : folds)
            for (const CvMethod& m : f.methods) {
                if (!values.count(m.name)) order.push_back(m.name);
                for (const Figure& fig : kFigures) values[m.name][fig.name].push_back(fig.get(m));
            }
        std::vector<double> spe;
        for (const CvFold& f : folds) spe.push_back(f.seconds_per_epoch);
        if (*json) {
            // The command as typed: the engine options (--tf32, --half-bank, ...) are not in the recipe.
            nlohmann::json j = {{"command", command_line()},
                                {"recipe", nlohmann::json::parse(recipe_to_json(spec->recipe))},
                                {"folds", nlohmann::json::array()}};
            for (const CvFold& f : folds) {
                nlohmann::json jf = {{"fold", f.fold}, {"test_people", people_range(f.test_people)},
                                     {"seconds_per_epoch", f.seconds_per_epoch}, {"device", f.device}};
                if (!f.val_people.empty()) {
                    jf["validation_people"] = nlohmann::json::array();
                    for (int p : f.val_people) jf["validation_people"].push_back(p + 1);
                }
                for (const CvMethod& m : f.methods)
                    jf[m.name] = {{"test", report_to_json(m.test)}, {"identification", identify_to_json(m.ident)}};
                j["folds"].push_back(jf);
            }
            for (const std::string& name : order)
                for (const Figure& fig : kFigures) {
                    const MeanSd ms = mean_sd(values[name][fig.name]);
                    j["mean"][name][fig.name] = ms.mean;
                    j["sd"][name][fig.name] = ms.sd;
                }
            j["mean"]["seconds_per_epoch"] = mean_sd(spe).mean;
            std::printf("%s\n", dump_json(j, 2).c_str());
            return 0;
        }
        std::printf("\n%d-fold cross-validation over people (mean +- sd over folds; test people never seen in training)\n",
                    int(folds.size()));
        // Columns as the fold lines name them; each value "0.9697 +- 0.0108" is 16 characters.
        std::printf("%-10s  %-16s  %-16s  %-16s  %-16s  %-16s  %s\n", "method", "AUC", "EER", "TAR@FAR1%", "one-shot",
                    "rank-1", "DIR@FAR1%");
        for (const std::string& name : order) {
            std::printf("%-10s", name.c_str());
            for (const char* fig : {"auc", "eer", "tar_far1", "oneshot", "rank1", "dir_far1"}) {
                const MeanSd ms = mean_sd(values[name][fig]);
                std::printf("  %.4f +- %.4f", ms.mean, ms.sd);
            }
            std::printf("\n");
        }
        if (spec->val_people > 0)
            std::printf("validation: the learned model on %d training people per fold held out of training (choose "
                        "levers by this row; the test rows stay unseen by every choice)\n",
                        spec->val_people);
        std::printf("training: %.2f s/epoch (mean over folds), %d epoch%s, device %s\n", mean_sd(spe).mean,
                    spec->recipe.epochs, spec->recipe.epochs == 1 ? "" : "s",
                    folds.empty() ? "" : folds.front().device.c_str());
        return 0;
    };
}

}  // namespace siamese::cli
