// siamese train: pairs -> training (checkpointed, resumable) -> honest test figures ->
// model.safetensors, metrics.jsonl, summary.json and state.safetensors in the output folder.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "siamese/checkpoint.hpp"
#include "siamese/common.hpp"
#include "siamese/gallery.hpp"
#include "siamese/report.hpp"
#include "siamese/synth.hpp"
#include "siamese/train_state.hpp"
#include "siamese/trainer.hpp"

namespace siamese::cli {

namespace {

// Everything that defines a training run; saved in the training state so --resume needs nothing else.
struct TrainArgs {
    std::string data, protocol = "tutorial", train_people, test_people, optimizer = "rmsprop";
    std::string resize = "stride", conv_filters = "6,12", dense = "128,50";
    int epochs = 13, batch = 128, downsample = 2, kernel = 3, pool = 2, checkpoint_every = 0;
    double lr = 1e-3, margin = 1.0, conv_dropout = 0.25, dense_dropout = 0.1;
    uint64_t seed = 1;
    NLOHMANN_DEFINE_TYPE_INTRUSIVE(TrainArgs, data, protocol, train_people, test_people, optimizer, resize, conv_filters,
                                   dense, epochs, batch, downsample, kernel, pool, checkpoint_every, lr, margin,
                                   conv_dropout, dense_dropout, seed)
};

// How this process runs it (not saved).
struct RunArgs {
    std::string device = "auto", out = "run", resume, conv = "custom";
    int threads = 0, crash_after_steps = 0;
    bool no_graphs = false, profile = false, quiet = false;
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

nlohmann::json epoch_json(const EpochStats& s) {
    return {{"epoch", s.epoch}, {"loss", s.train_loss}, {"val_loss", s.val_loss}, {"val_accuracy", s.val_accuracy},
            {"seconds", s.seconds}};
}

// A live progress line on a terminal, redrawn in place at most 10 times a second.
class Progress {
public:
    explicit Progress(bool enabled) : enabled_(enabled) {}
    void batch(int epoch, int epochs, int done, int total, int batch_pairs) {
        if (!enabled_) return;
        const auto now = std::chrono::steady_clock::now();
        if (done == 1 || epoch != epoch_) {
            epoch_ = epoch;
            start_ = now;
            first_done_ = done;
        }
        // The first batch only starts the clock: rates need two points.
        if (done != total && (done == first_done_ || now - last_ < std::chrono::milliseconds(100))) return;
        last_ = now;
        const double secs = std::chrono::duration<double>(now - start_).count();
        const int counted = done - first_done_;
        const double rate = secs > 0 ? counted * double(batch_pairs) / secs : 0.0;
        const double eta = counted > 0 ? secs / counted * (total - done) : 0.0;
        std::fprintf(stdout, "\r\033[K  epoch %d/%d  batch %d/%d  %.0f pairs/s  ETA %.1fs", epoch, epochs, done, total,
                     rate, eta);
        std::fflush(stdout);
    }
    void clear() {
        if (enabled_) std::fprintf(stdout, "\r\033[K");
    }

private:
    bool enabled_;
    int epoch_ = -1, first_done_ = 1;
    std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

nlohmann::json report_to_json(const TestReport& r) {
    nlohmann::json j = {{"pairs", r.pairs},
                        {"genuine_pairs", r.genuine},
                        {"accuracy", r.accuracy},
                        {"accuracy_at_threshold", r.accuracy_at_threshold},
                        {"auc", r.auc},
                        {"eer", r.eer},
                        {"tutorial_metric", r.tutorial_metric}};
    if (r.oneshot_accuracy >= 0) {
        j["oneshot_accuracy"] = r.oneshot_accuracy;
        j["oneshot_draws"] = r.oneshot_draws;
    }
    return j;
}

nlohmann::json identify_to_json(const IdentifyReport& r) {
    return {{"gallery_people", r.gallery_people}, {"known_probes", r.known_probes}, {"stranger_probes", r.stranger_probes},
            {"rank1", r.rank1}, {"rank5", r.rank5}, {"dir_at_far_1pct", r.dir_far1}, {"dir_at_far_10pct", r.dir_far10},
            {"threshold_far_1pct", r.threshold_far1}, {"threshold_far_10pct", r.threshold_far10}};
}

void print_identify(const IdentifyReport& r) {
    std::printf("identification: %d enrolled people, %d probes of them, %d stranger probes (mean of %d draws)\n",
                r.gallery_people, r.known_probes, r.stranger_probes, r.draws);
    std::printf("  closed set rank-1 %.4f  rank-5 %.4f\n", r.rank1, r.rank5);
    std::printf("  open set detection-and-identification rate: %.4f at 1%% false alarms, %.4f at 10%%\n", r.dir_far1,
                r.dir_far10);
}

void print_report(const TestReport& r, double threshold) {
    std::printf("test pairs %d (%d genuine)\n", r.pairs, r.genuine);
    std::printf("  accuracy at d < 0.5          %.4f\n", r.accuracy);
    std::printf("  accuracy at threshold %.3f   %.4f\n", threshold, r.accuracy_at_threshold);
    std::printf("  ROC AUC                      %.4f\n", r.auc);
    std::printf("  EER                          %.4f\n", r.eer);
    std::printf("  tutorial_metric              %.4f  (precision of 'genuine' at d < 0.5, the tutorial's \"accuracy\")\n",
                r.tutorial_metric);
    if (r.oneshot_accuracy >= 0)
        std::printf("  one-shot identification      %.4f  (mean of %d draws)\n", r.oneshot_accuracy, r.oneshot_draws);
}

Runner add_train(CLI::App& app) {
    auto* sub = app.add_subcommand("train", "Train a Siamese network and report honest test figures");
    auto a = std::make_shared<TrainArgs>();
    auto r = std::make_shared<RunArgs>();
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
    sub->add_option("--checkpoint-every", a->checkpoint_every,
                    "Also save the training state every N steps (it is always saved at every epoch end)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    sub->add_option("--threads", r->threads, "CPU threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
    sub->add_option("--device", r->device, "auto, cpu or cuda")->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    sub->add_option("--out", r->out, "Output folder")->capture_default_str();
    sub->add_option("--resume", r->resume, "Continue the run saved in this folder (its state.safetensors); other training options are taken from it");
    sub->add_option("--conv", r->conv, "CUDA convolutions: custom (fused kernels) or cudnn")->capture_default_str()
        ->check(CLI::IsMember({"custom", "cudnn"}));
    sub->add_flag("--no-graphs", r->no_graphs, "CUDA: launch every kernel instead of replaying a captured graph");
    sub->add_flag("--profile", r->profile, "CUDA: time every phase with CUDA events and print a table at the end");
    sub->add_flag("--quiet", r->quiet, "Print only the final figures");
    sub->add_option("--crash-after-steps", r->crash_after_steps, "Testing aid: kill this process (SIGKILL) after N steps")
        ->group("");
    return [a, r, sub]() {
        TrainState resumed;
        bool resuming = !r->resume.empty();
        if (resuming) {
            for (const char* opt : {"--data", "--protocol", "--epochs", "--seed", "--batch", "--lr", "--optimizer"})
                if (sub->count(opt)) throw UsageError(std::string("--resume takes the run's options from its state; drop ") + opt);
            resumed = load_train_state(r->resume + "/state.safetensors");
            try {
                *a = nlohmann::json::parse(resumed.args_json).get<TrainArgs>();
            } catch (const nlohmann::json::exception& e) {
                throw DataError(r->resume + "/state.safetensors: bad saved options (" + e.what() + ")");
            }
            r->out = r->resume;
            if (resumed.progress.epoch > a->epochs) throw UsageError(r->resume + ": that run already finished");
        }
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
        h.conv = r->conv;
        h.graphs = !r->no_graphs;
        h.profile = r->profile;

        // Everything that can be wrong with the input is found before the output folder is touched.
        const ImageBank bank = a->data.empty() ? synth_bank(SynthOptions{}, pp) : load_dataset(a->data, pp);
        h.net.in_h = bank.height;
        h.net.in_w = bank.width;
        h.net.validate();
        const PairSplit split = make_split(bank, a->protocol, a->train_people, a->test_people, a->seed);
        const ParamLayout layout = make_layout(h.net);
        if (resuming && resumed.params.size() != layout.total)
            throw DataError(r->resume + "/state.safetensors: weights do not match the network");
        prepare_out_dir(r->out);

        auto backend = make_backend(r->device, h, r->threads);
        backend->upload_images(bank);
        if (resuming) {
            backend->set_params(resumed.params);
            backend->set_opt_state(resumed.opt_state);
        } else {
            backend->set_params(glorot_init(layout, a->seed));
        }
        if (!r->quiet) {
            std::printf("data %s: %d people, %d images %dx%d; protocol %s: %d train, %d validation, %d test pairs; device %s\n",
                        a->data.empty() ? "built-in synthetic faces" : a->data.c_str(), int(bank.people.size()), bank.size(),
                        bank.width, bank.height, a->protocol.c_str(), split.train.size(), split.val.size(),
                        split.test.size(), backend->name().c_str());
            if (resuming)
                std::printf("resuming %s at epoch %d, batch %d (step %llu)\n", r->resume.c_str(), resumed.progress.epoch,
                            resumed.progress.next_batch + 1, static_cast<unsigned long long>(resumed.progress.step));
            std::fflush(stdout);
        }

        // metrics.jsonl holds the finished epochs; a resumed run rewrites it from the saved history.
        nlohmann::json history = resuming ? nlohmann::json::parse(resumed.history_json) : nlohmann::json::array();
        const std::string metrics_path = r->out + "/metrics.jsonl";
        {
            std::string lines;
            for (const auto& e : history) lines += e.dump() + "\n";
            write_file_atomic(metrics_path, lines);
        }
        std::ofstream metrics(metrics_path, std::ios::app);
        if (!metrics) throw DataError(metrics_path + ": cannot open for writing");

        TrainOptions to;
        to.epochs = a->epochs;
        to.batch = a->batch;
        to.seed = a->seed;
        to.margin = h.margin;
        to.checkpoint_every = a->checkpoint_every;
        const std::string args_json = nlohmann::json(*a).dump();
        const std::string state_path = r->out + "/state.safetensors";
        Progress progress(!r->quiet && ::isatty(STDOUT_FILENO));
        int current_epoch = resuming ? resumed.progress.epoch : 1;
        TrainCallbacks cb;
        cb.on_batch = [&](int done, int total, uint64_t step) {
            progress.batch(current_epoch, a->epochs, done, total, a->batch);
            if (r->crash_after_steps > 0 && step == uint64_t(r->crash_after_steps)) ::kill(::getpid(), SIGKILL);
        };
        cb.on_epoch = [&](const EpochStats& s) {
            progress.clear();
            if (!r->quiet) {
                std::printf("epoch %3d/%d  loss %.4f  val_loss %.4f  val_acc %.4f  %.2fs\n", s.epoch, to.epochs, s.train_loss,
                            s.val_loss, s.val_accuracy, s.seconds);
                std::fflush(stdout);
            }
            history.push_back(epoch_json(s));
            metrics << epoch_json(s).dump() << "\n" << std::flush;
            current_epoch = s.epoch + 1;
        };
        cb.on_checkpoint = [&](const TrainProgress& p) {
            TrainState st;
            st.args_json = args_json;
            st.history_json = history.dump();
            st.progress = p;
            st.params = backend->params();
            st.opt_state = backend->opt_state();
            if (const std::string bad = first_nonfinite_tensor(layout, st.params.data()); !bad.empty())
                throw DataError("training diverged: non-finite weights in " + bad + " at step " + std::to_string(p.step) +
                                "; the last checkpoint is kept");
            save_train_state(state_path, st);
        };
        TrainProgress start;
        if (resuming) start = resumed.progress;
        const TrainResult res = train_model(*backend, split, to, cb, start);

        const std::vector<int> oneshot_people = a->protocol == "people" ? split.test_people : std::vector<int>{};
        std::vector<float> test_d, emb;
        const TestReport rep =
            evaluate_model(*backend, bank, split.test, res.threshold, oneshot_people, a->seed, &test_d, &emb);
        print_report(rep, res.threshold);
        nlohmann::json identification;
        if (a->protocol == "people") {
            // Open-set identification: the first half of the test people enrolled with one photo
            // each, every other photo of all test people a probe (the rest are strangers).
            const std::vector<int> gallery(split.test_people.begin(), split.test_people.begin() + (split.test_people.size() + 1) / 2);
            const IdentifyReport id = identify_on_bank(emb, backend->embed_dim(), bank, gallery, split.test_people, 1, 20, a->seed, false);
            identification = identify_to_json(id);
            print_identify(id);
        }
        if (r->profile) {
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
        save_model(r->out + "/model.safetensors", m);

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
                                  {"history", history},
                                  {"test", report_to_json(rep)}};
        if (!identification.is_null()) summary["identification"] = identification;
        for (const auto& e : history) summary["epoch_seconds"].push_back(e["seconds"]);
        write_file_atomic(r->out + "/summary.json", summary.dump(2) + "\n");
        write_run_report(r->out, summary, test_d, split.test.label);
        if (!r->quiet)
            std::printf("wrote %s/: model.safetensors, metrics.jsonl, summary.json, report.html (loss.svg, roc.svg, distances.svg)\n",
                        r->out.c_str());
        return 0;
    };
}

}  // namespace siamese::cli
