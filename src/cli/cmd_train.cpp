// siamese train: pairs -> training -> honest test figures -> model.safetensors, metrics.jsonl,
// summary.json in the output folder.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "siamese/checkpoint.hpp"
#include "siamese/common.hpp"
#include "siamese/synth.hpp"
#include "siamese/trainer.hpp"

namespace siamese::cli {

namespace {

struct TrainArgs {
    std::string data, protocol = "tutorial", train_people, test_people, optimizer = "rmsprop", device = "auto";
    std::string out = "run", resize = "stride", conv_filters = "6,12", dense = "128,50", conv = "custom";
    bool no_graphs = false, profile = false;
    int epochs = 13, batch = 128, downsample = 2, threads = 0, kernel = 3, pool = 2;
    double lr = 1e-3, margin = 1.0, conv_dropout = 0.25, dense_dropout = 0.1;
    uint64_t seed = 1;
};

std::vector<int> parse_int_list(const std::string& s, const std::string& what) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            v.push_back(std::stoi(item, &used));
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::exception&) {
            throw UsageError(what + " '" + s + "': expected comma-separated integers");
        }
    }
    if (v.empty()) throw UsageError(what + " is empty");
    return v;
}

// Creates the output folder and proves it writable before any training starts.
void prepare_out_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw DataError(dir + ": cannot create output folder (" + ec.message() + ")");
    const std::string probe = dir + "/.write_test";
    std::ofstream f(probe);
    if (!f || !(f << "ok") || (f.close(), !f)) throw DataError(dir + ": output folder is not writable");
    std::filesystem::remove(probe, ec);
}

}  // namespace

nlohmann::json report_to_json(const TestReport& r) {
    nlohmann::json j = {{"pairs", r.pairs},
                        {"genuine_pairs", r.genuine},
                        {"accuracy", r.accuracy},
                        {"accuracy_at_threshold", r.accuracy_at_threshold},
                        {"auc", r.auc},
                        {"eer", r.eer},
                        {"tutorial_metric", r.tutorial_metric}};
    if (r.oneshot_accuracy >= 0) j["oneshot_accuracy"] = r.oneshot_accuracy;
    return j;
}

void print_report(const TestReport& r, double threshold) {
    std::printf("test pairs %d (%d genuine)\n", r.pairs, r.genuine);
    std::printf("  accuracy at d < 0.5          %.4f\n", r.accuracy);
    std::printf("  accuracy at threshold %.3f   %.4f\n", threshold, r.accuracy_at_threshold);
    std::printf("  ROC AUC                      %.4f\n", r.auc);
    std::printf("  EER                          %.4f\n", r.eer);
    std::printf("  tutorial_metric              %.4f  (precision of 'genuine' at d < 0.5, the tutorial's \"accuracy\")\n",
                r.tutorial_metric);
    if (r.oneshot_accuracy >= 0) std::printf("  one-shot identification      %.4f\n", r.oneshot_accuracy);
}


Runner add_train(CLI::App& app) {
    auto* sub = app.add_subcommand("train", "Train a Siamese network and report honest test figures");
    auto a = std::make_shared<TrainArgs>();
    sub->add_option("--data", a->data, "Folder with one sub-folder of PGM images per person (default: built-in synthetic faces)");
    sub->add_option("--protocol", a->protocol, "tutorial (the reference recipe's pairs) or people (unseen test people)")
        ->capture_default_str()->check(CLI::IsMember({"tutorial", "people"}));
    sub->add_option("--train-people", a->train_people, "People protocol: training people, 1-based, e.g. 1-30 (default: all but the test people)");
    sub->add_option("--test-people", a->test_people, "People protocol: test people, e.g. 31-40 (default: the last quarter)");
    sub->add_option("--epochs", a->epochs, "Epochs")->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--batch", a->batch, "Pairs per batch")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    sub->add_option("--optimizer", a->optimizer, "rmsprop, adam or sgd")->capture_default_str()
        ->check(CLI::IsMember({"rmsprop", "adam", "sgd"}));
    sub->add_option("--lr", a->lr, "Learning rate")->capture_default_str()->check(CLI::PositiveNumber);
    sub->add_option("--margin", a->margin, "Contrastive margin")->capture_default_str()->check(CLI::PositiveNumber);
    sub->add_option("--downsample", a->downsample, "Downsampling factor")->capture_default_str()->check(CLI::Range(1, 1024));
    sub->add_option("--resize", a->resize, "stride (img[::f, ::f], the recipe) or area (mean of f x f blocks)")
        ->capture_default_str()->check(CLI::IsMember({"stride", "area"}));
    sub->add_option("--conv-filters", a->conv_filters, "Filters per conv layer")->capture_default_str();
    sub->add_option("--kernel", a->kernel, "Conv kernel size")->capture_default_str();
    sub->add_option("--pool", a->pool, "Max-pool size")->capture_default_str();
    sub->add_option("--dense", a->dense, "Dense layer widths (the last is the embedding)")->capture_default_str();
    sub->add_option("--conv-dropout", a->conv_dropout, "Dropout after each conv block")->capture_default_str();
    sub->add_option("--dense-dropout", a->dense_dropout, "Dropout after each dense layer but the last")->capture_default_str();
    sub->add_option("--seed", a->seed, "Seed of pairs, initialisation, shuffles and dropout")->capture_default_str();
    sub->add_option("--threads", a->threads, "CPU threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
    sub->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    sub->add_option("--out", a->out, "Output folder")->capture_default_str();
    sub->add_option("--conv", a->conv, "CUDA convolutions: custom (fused kernels) or cudnn")->capture_default_str()
        ->check(CLI::IsMember({"custom", "cudnn"}));
    sub->add_flag("--no-graphs", a->no_graphs, "CUDA: launch every kernel instead of replaying a captured graph");
    sub->add_flag("--profile", a->profile, "CUDA: time every phase with CUDA events and print a table at the end");
    return [a]() {
        Preprocess pp;
        pp.downsample = a->downsample;
        pp.mode = a->resize == "area" ? ResizeMode::Area : ResizeMode::Stride;
        TrainHyper h;
        h.net.conv_filters = parse_int_list(a->conv_filters, "--conv-filters");
        h.net.dense = parse_int_list(a->dense, "--dense");
        h.net.kernel = a->kernel;
        h.net.pool = a->pool;
        h.net.conv_dropout = float(a->conv_dropout);
        h.net.dense_dropout = float(a->dense_dropout);
        h.opt.kind = parse_optimizer(a->optimizer);
        h.opt.lr = float(a->lr);
        h.margin = float(a->margin);
        h.seed = a->seed;
        h.conv = a->conv;
        h.graphs = !a->no_graphs;
        h.profile = a->profile;
        prepare_out_dir(a->out);

        const ImageBank bank = a->data.empty() ? synth_bank(SynthOptions{}, pp) : load_dataset(a->data, pp);
        const int n_people = int(bank.people.size());
        if (n_people < 2) throw DataError((a->data.empty() ? std::string("built-in data") : a->data) + ": fewer than two people");
        h.net.in_h = bank.height;
        h.net.in_w = bank.width;
        h.net.validate();

        const PairSplit split = make_split(bank, a->protocol, a->train_people, a->test_people, a->seed);

        auto backend = make_backend(a->device, h, a->threads);
        backend->upload_images(bank);
        backend->set_params(glorot_init(make_layout(h.net), a->seed));
        std::printf("data %s: %d people, %d images %dx%d; protocol %s: %d train, %d validation, %d test pairs; device %s\n",
                    a->data.empty() ? "built-in synthetic faces" : a->data.c_str(), n_people, bank.size(), bank.width,
                    bank.height, a->protocol.c_str(), split.train.size(), split.val.size(), split.test.size(),
                    backend->name().c_str());
        std::fflush(stdout);

        const std::string metrics_path = a->out + "/metrics.jsonl";
        std::ofstream metrics(metrics_path, std::ios::trunc);
        if (!metrics) throw DataError(metrics_path + ": cannot create file");
        TrainOptions to;
        to.epochs = a->epochs;
        to.batch = a->batch;
        to.seed = a->seed;
        to.margin = h.margin;
        TrainCallbacks cb;
        cb.on_epoch = [&](const EpochStats& s) {
            if (!std::isfinite(s.train_loss))
                throw DataError("training diverged: non-finite loss in epoch " + std::to_string(s.epoch));
            std::printf("epoch %3d/%d  loss %.4f  val_loss %.4f  val_acc %.4f  %.2fs\n", s.epoch, to.epochs, s.train_loss,
                        s.val_loss, s.val_accuracy, s.seconds);
            std::fflush(stdout);
            metrics << nlohmann::json{{"epoch", s.epoch}, {"loss", s.train_loss}, {"val_loss", s.val_loss},
                                      {"val_accuracy", s.val_accuracy}, {"seconds", s.seconds}}.dump()
                    << "\n" << std::flush;
        };
        const TrainResult res = train_model(*backend, split, to, cb);
        const std::vector<int> oneshot_people = a->protocol == "people" ? split.test_people : std::vector<int>{};
        const TestReport rep = evaluate_model(*backend, bank, split.test, res.threshold, oneshot_people, a->seed);
        print_report(rep, res.threshold);
        if (a->profile) {
            const std::string table = backend->profile_report();
            std::printf("%s", table.empty() ? "profile: per-phase timing is measured by the CUDA engine only\n" : table.c_str());
        }

        Model m;
        m.net = h.net;
        m.pre = pp;
        m.threshold = float(res.threshold);
        m.margin = h.margin;
        m.params = backend->params();
        m.extra = {{"protocol", a->protocol}, {"seed", std::to_string(a->seed)}, {"epochs", std::to_string(a->epochs)},
                   {"optimizer", a->optimizer}};
        save_model(a->out + "/model.safetensors", m);

        nlohmann::json summary = {{"protocol", a->protocol},
                                  {"device", backend->name()},
                                  {"seed", a->seed},
                                  {"epochs", a->epochs},
                                  {"batch", a->batch},
                                  {"optimizer", a->optimizer},
                                  {"data", a->data.empty() ? "builtin" : a->data},
                                  {"train_pairs", split.train.size()},
                                  {"val_pairs", split.val.size()},
                                  {"test_pairs", split.test.size()},
                                  {"threshold", res.threshold},
                                  {"epoch_seconds", nlohmann::json::array()},
                                  {"test", report_to_json(rep)}};
        for (const auto& e : res.epochs) summary["epoch_seconds"].push_back(e.seconds);
        write_file_atomic(a->out + "/summary.json", summary.dump(2) + "\n");
        std::printf("wrote %s/model.safetensors, metrics.jsonl, summary.json\n", a->out.c_str());
        return 0;
    };
}

}  // namespace siamese::cli
