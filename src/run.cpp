// run_training: the whole of `siamese train` but the command line and the printing.
#include "siamese/run.hpp"
#include "siamese/jsonio.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "siamese/backend.hpp"
#include "siamese/baselines.hpp"
#include "siamese/checkpoint_writer.hpp"
#include "siamese/files.hpp"
#include "siamese/model.hpp"
#include "siamese/pixel_branch.hpp"
#include "siamese/common.hpp"
#include "siamese/report.hpp"
#include "siamese/sampler.hpp"
#include "siamese/synth.hpp"
#include "siamese/train_state.hpp"

namespace siamese {

// With defaults: a run saved before an option existed resumes with that option's default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RecipeOptions, data, protocol, train_people, test_people, optimizer, resize,
                                                conv_filters, dense, epochs, batch, downsample, kernel, pool,
                                                checkpoint_every, lr, margin, conv_dropout, dense_dropout, seed, recipe,
                                                embed_activation, l2_normalize, sampler, pk_people, pk_images, mine,
                                                augment, augment_strength, schedule, warmup, loss, temperature, flip_average,
                                                augment_erase, weight_decay, pixel_branch, pixel_weight, pixel_metric,
                                                pixel_reg, image_size)

// The data folder is the user's bytes (not always UTF-8): written reversibly (jsonio.hpp).
std::string recipe_to_json(const RecipeOptions& r) {
    nlohmann::json j = r;
    j["data"] = bytes_to_json(r.data);
    return j.dump();
}

RecipeOptions recipe_from_json(const std::string& json) {
    try {
        nlohmann::json j = nlohmann::json::parse(json);
        const std::string data = j.contains("data") ? bytes_from_json(j["data"]) : std::string();
        j["data"] = "";
        RecipeOptions r = j.get<RecipeOptions>();
        r.data = data;
        return r;
    } catch (const nlohmann::json::exception& e) {
        throw DataError(std::string("bad saved options (") + e.what() + ")");
    }
}

namespace {

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

}  // namespace

std::string recipe_problem(const RecipeOptions& r) {
    auto one_of = [](const std::string& v, std::initializer_list<const char*> ok) {
        for (const char* o : ok)
            if (v == o) return true;
        return false;
    };
    auto str = [](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", v);
        return std::string(b);
    };
    auto range = [](const char* what, long v, long lo, long hi) {
        return v < lo || v > hi ? std::string(what) + " " + std::to_string(v) + ": must be " + std::to_string(lo) + ".." +
                                      std::to_string(hi)
                                : std::string();
    };
    if (!one_of(r.protocol, {"tutorial", "people"})) return "--protocol '" + r.protocol + "': must be tutorial or people";
    if (!one_of(r.optimizer, {"rmsprop", "adam", "sgd"}))
        return "--optimizer '" + r.optimizer + "': must be rmsprop, adam or sgd";
    if (!one_of(r.resize, {"stride", "area"})) return "--resize '" + r.resize + "': must be stride or area";
    for (std::string p : {range("--epochs", r.epochs, 1, 100000), range("--batch", r.batch, 1, 1 << 20),
                          range("--downsample", r.downsample, 1, 1024), range("--kernel", r.kernel, 1, 64),
                          range("--pool", r.pool, 1, 8), range("--checkpoint-every", r.checkpoint_every, 0, 1L << 30)})
        if (!p.empty()) return p;
    // Learning rate and margin train in float: finite, positive, and still so as a float.
    if (!(std::isfinite(r.lr) && r.lr > 0 && std::isfinite(float(r.lr)) && float(r.lr) > 0))
        return "--lr " + str(r.lr) + ": must be a finite number > 0 that a float can hold (1e-38 .. 3e38)";
    if (!(std::isfinite(r.margin) && r.margin > 0 && std::isfinite(float(r.margin)) && float(r.margin) > 0))
        return "--margin " + str(r.margin) + ": must be a finite number > 0 that a float can hold";
    if (!(r.conv_dropout >= 0 && r.conv_dropout < 1)) return "--conv-dropout " + str(r.conv_dropout) + ": must be in [0, 1)";
    if (!(r.dense_dropout >= 0 && r.dense_dropout < 1))
        return "--dense-dropout " + str(r.dense_dropout) + ": must be in [0, 1)";
    if (!one_of(r.recipe, {"tutorial", "strong"})) return "--recipe '" + r.recipe + "': must be tutorial or strong";
    if (!one_of(r.embed_activation, {"relu", "none"}))
        return "--embed-activation '" + r.embed_activation + "': must be relu or none";
    if (!one_of(r.sampler, {"pairs", "pk"})) return "--sampler '" + r.sampler + "': must be pairs or pk";
    if (!one_of(r.mine, {"all", "balanced"})) return "--mine '" + r.mine + "': must be all or balanced";
    if (!one_of(r.loss, {"contrastive", "softmax"})) return "--loss '" + r.loss + "': must be contrastive or softmax";
    // Logits are dot products / T in float: T below ~1e-3 overflows exp's range on unit vectors.
    if (!(std::isfinite(r.temperature) && r.temperature >= 1e-3 && r.temperature <= 1e3))
        return "--temperature " + str(r.temperature) + ": must be a number from 0.001 to 1000";
    if (r.loss == "softmax" && r.sampler != "pk") return "--loss softmax needs --sampler pk (the loss is over a batch's images)";
    if (!one_of(r.schedule, {"constant", "cosine"})) return "--schedule '" + r.schedule + "': must be constant or cosine";
    for (std::string p : {range("--pk-people", r.pk_people, 2, 4096), range("--pk-images", r.pk_images, 1, 4096)})
        if (!p.empty()) return p;
    if (long(r.pk_people) * r.pk_images > 4096)
        return "--pk-people x --pk-images = " + std::to_string(long(r.pk_people) * r.pk_images) + ": at most 4096 images a batch";
    if (r.augment && r.sampler != "pk") return "--augment needs --sampler pk";
    if (!(r.warmup >= 0 && r.warmup < 1)) return "--warmup " + str(r.warmup) + ": must be a fraction in [0, 1)";
    if (!(r.augment_strength >= 0 && r.augment_strength <= 5))
        return "--augment-strength " + str(r.augment_strength) + ": must be in [0, 5]";
    if (!(r.augment_erase >= 0 && r.augment_erase <= 1))
        return "--augment-erase " + str(r.augment_erase) + ": must be a fraction in [0, 1]";
    if (r.augment_erase > 0 && !r.augment) return "--augment-erase needs --augment true";
    if (!(r.weight_decay >= 0 && r.weight_decay <= 10))
        return "--weight-decay " + str(r.weight_decay) + ": must be in [0, 10]";
    if (std::string p = range("--pixel-branch", r.pixel_branch, 0, 4096); !p.empty()) return p;
    if (!(std::isfinite(r.pixel_weight) && r.pixel_weight > 0 && r.pixel_weight <= 100))
        return "--pixel-weight " + str(r.pixel_weight) + ": must be a number > 0 and at most 100";
    if (!one_of(r.pixel_metric, {"pca", "within"})) return "--pixel-metric '" + r.pixel_metric + "': must be pca or within";
    if (!(std::isfinite(r.pixel_reg) && r.pixel_reg >= 1e-6 && r.pixel_reg <= 100))
        return "--pixel-reg " + str(r.pixel_reg) + ": must be a number from 1e-6 to 100";
    if (!r.image_size.empty()) {
        int w, h;
        if (!parse_image_size(r.image_size, &w, &h))
            return "--image-size '" + r.image_size + "': must be WIDTHxHEIGHT in pixels, each 1..16384 (e.g. 92x112)";
        if (r.data.empty()) return "--image-size is for the photos of --data (the built-in faces are 92x112)";
    }
    return "";
}

bool parse_image_size(const std::string& s, int* w, int* h) {
    const size_t x = s.find('x');
    long v[2];
    if (x == std::string::npos || !parse_int_in(s.substr(0, x), 1, 16384, &v[0]) || !parse_int_in(s.substr(x + 1), 1, 16384, &v[1]))
        return false;
    *w = int(v[0]);
    *h = int(v[1]);
    return true;
}

ImageBank load_bank(const RecipeOptions& r, const Preprocess& pp) {
    if (r.data.empty()) return synth_bank(SynthOptions{}, pp);
    int w = 0, h = 0;
    if (!r.image_size.empty() && !parse_image_size(r.image_size, &w, &h))
        throw UsageError("--image-size '" + r.image_size + "': must be WIDTHxHEIGHT");
    ImageBank bank = load_dataset(r.data, pp, w, h, "--image-size");
    // The network's input is the photos' size (over --downsample): a phone's photos make a
    // network of millions of weights that trains for hours. Four times ORL's area is the line.
    if (r.image_size.empty() && long(bank.raw_width) * bank.raw_height > 4L * 92 * 112)
        std::fprintf(stderr,
                     "note: %s: the photos are %dx%d (the first one's size: %s), so the network's input is %dx%d; "
                     "--image-size 92x112 (ORL's size) brings every photo to a size that trains in seconds\n",
                     r.data.c_str(), bank.raw_width, bank.raw_height, bank.files.front().c_str(), bank.width, bank.height);
    return bank;
}

void apply_strong_recipe(RecipeOptions& r, const std::vector<std::string>& given) {
    auto unless_given = [&](const char* name, auto& field, auto value) {
        if (std::find(given.begin(), given.end(), std::string(name)) == given.end()) field = value;
    };
    r.recipe = "strong";
    // Why each value: docs/strong-recipe.md (measured by `siamese cv` on unseen ORL people).
    unless_given("--embed-activation", r.embed_activation, std::string("none"));
    unless_given("--l2-normalize", r.l2_normalize, true);
    unless_given("--sampler", r.sampler, std::string("pk"));
    unless_given("--pk-people", r.pk_people, 16);
    unless_given("--pk-images", r.pk_images, 8);
    unless_given("--mine", r.mine, std::string("all"));
    unless_given("--augment", r.augment, true);
    unless_given("--optimizer", r.optimizer, std::string("adam"));
    unless_given("--lr", r.lr, 1e-3);
    unless_given("--schedule", r.schedule, std::string("cosine"));
    unless_given("--margin", r.margin, 0.5);
    unless_given("--conv-dropout", r.conv_dropout, 0.0);
    unless_given("--dense-dropout", r.dense_dropout, 0.0);
    unless_given("--epochs", r.epochs, 200);
    // Chosen on validation people (cv --val-people 5, seeds 1 and 2), then confirmed on the
    // test folds: docs/strong-recipe.md, "Softmax loss, flip averaging, width".
    unless_given("--loss", r.loss, std::string("softmax"));
    unless_given("--temperature", r.temperature, 0.05);
    unless_given("--flip-average", r.flip_average, true);
    unless_given("--conv-filters", r.conv_filters, std::string("16,32"));
    unless_given("--dense", r.dense, std::string("256,128"));
    // The hybrid embedding: docs/strong-recipe.md, "A pixel branch" (chosen the same way), its
    // metric learned on the training people: "The pixel branch's metric, learned".
    unless_given("--pixel-branch", r.pixel_branch, 50);
    unless_given("--pixel-weight", r.pixel_weight, 0.8);
    unless_given("--pixel-metric", r.pixel_metric, std::string("within"));
    unless_given("--pixel-reg", r.pixel_reg, 0.3);
}

Preprocess preprocess_of(const RecipeOptions& a) {
    Preprocess pp;
    pp.downsample = a.downsample;
    pp.mode = a.resize == "area" ? ResizeMode::Area : ResizeMode::Stride;
    return pp;
}

int steps_per_epoch(const RecipeOptions& a, const PairSplit& split) {
    if (a.sampler == "pk") return group_batches(group_source(split), a.pk_people, a.pk_images);
    return (split.train.size() + a.batch - 1) / a.batch;
}

Recipe make_recipe(const RecipeOptions& a, int in_h, int in_w, int steps) {
    Recipe h;
    h.net.in_h = in_h;
    h.net.in_w = in_w;
    h.net.conv_filters = parse_int_list(a.conv_filters, "--conv-filters");
    h.net.dense = parse_int_list(a.dense, "--dense");
    h.net.kernel = a.kernel;
    h.net.pool = a.pool;
    h.net.conv_dropout = float(a.conv_dropout);
    h.net.dense_dropout = float(a.dense_dropout);
    h.net.embed_relu = a.embed_activation == "relu";
    h.net.l2_normalize = a.l2_normalize;
    h.net.flip_average = a.flip_average;
    h.net.validate();
    h.opt.kind = parse_optimizer(a.optimizer);
    h.opt.lr = float(a.lr);
    h.opt.weight_decay = float(a.weight_decay);
    if (a.schedule == "cosine") {
        h.opt.decay_steps = uint64_t(std::max(1, steps)) * uint64_t(a.epochs);
        h.opt.warmup_steps = uint64_t(std::llround(a.warmup * double(h.opt.decay_steps)));
    }
    h.margin = float(a.margin);
    h.seed = a.seed;
    h.epochs = a.epochs;
    h.batch = a.batch;
    h.sampler = a.sampler == "pk" ? Recipe::Sampler::PK : Recipe::Sampler::Pairs;
    h.P = a.pk_people;
    h.K = a.pk_images;
    h.mining = a.mine == "balanced" ? Mining::Balanced : Mining::All;
    h.loss = a.loss == "softmax" ? BatchLoss::Softmax : BatchLoss::Contrastive;
    h.temperature = float(a.temperature);
    h.augment.enabled = a.augment;
    const float k = float(a.augment_strength);
    h.augment.shift *= k;
    h.augment.rotate *= k;
    h.augment.scale *= k;
    h.augment.brightness *= k;
    h.augment.contrast *= k;
    h.augment.erase = float(a.augment_erase);
    return h;
}

namespace {

// The recipe options' names as given on the command line, and their keys in the saved JSON.
std::string json_key(const std::string& option) {
    std::string k = option.rfind("--", 0) == 0 ? option.substr(2) : option;  // "--conv-filters" -> conv_filters
    for (char& c : k)
        if (c == '-') c = '_';
    return k;
}

// Refuses a resume whose given options differ from the saved run's, naming the first.
void check_given_options(const RecipeOptions& given, const RecipeOptions& saved, const std::vector<std::string>& names,
                         const std::string& dir) {
    const nlohmann::json g = nlohmann::json(given), s = nlohmann::json(saved);
    for (const std::string& name : names) {
        const std::string key = json_key(name);
        if (key == "checkpoint_every" || !s.contains(key)) continue;  // may change on resume
        if (g.at(key) != s.at(key))
            throw UsageError(name + " " + g.at(key).dump() + " differs from the run in " + dir + " (" + s.at(key).dump() +
                             "); a resumed run keeps its options (start a new run to change them)");
    }
}

// The state's saved options: the recipe, and the engine options that change the numbers, so that
// a resumed run keeps them and ends with the weights an uninterrupted run ends with.
std::string state_args_json(const RecipeOptions& a, const EngineFlags& f) {
    nlohmann::json j = nlohmann::json::parse(recipe_to_json(a));
    j["tf32"] = f.tf32;
    j["half_bank"] = f.half_bank;
    return j.dump();
}

// A resumed run's precision options: the saved run's (absent from states written before they
// were saved: off). Giving one the run did not start with is refused, as for the recipe options.
void keep_saved_precision(const std::string& args_json, EngineFlags& f, const std::string& dir) {
    const nlohmann::json j = nlohmann::json::parse(args_json);
    auto keep = [&](const char* key, const char* option, bool& given) {
        const bool saved = j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>();
        if (given && !saved)
            throw UsageError(std::string(option) + " differs from the run in " + dir +
                             " (started without it); a resumed run keeps its options (start a new run to change them)");
        if (saved && !given) std::fprintf(stderr, "note: %s, as the run in %s started\n", option, dir.c_str());
        given = saved;
    };
    keep("tf32", "--tf32", f.tf32);
    keep("half_bank", "--half-bank", f.half_bank);
}

// A fingerprint of the data a run trains on: its file list and its preprocessed pixels. A
// resumed run refuses different data (a person deleted, images replaced) instead of training
// on a mixture.
std::string data_fingerprint(const ImageBank& bank) {
    std::string names;
    for (const auto& f : bank.files) names += f + "\n";
    return std::to_string(bank.size()) + " images, files " + fnv1a64_hex(names.data(), names.size()) + ", pixels " +
           fnv1a64_hex(reinterpret_cast<const char*>(bank.pixels.data()), bank.pixels.size() * sizeof(float));
}

// An exclusive lock on the output folder for the whole run (flock: released by the kernel when
// the process ends, however it ends). A second run into the same folder is refused, naming the
// holder.
class FolderLock {
public:
    explicit FolderLock(const std::string& dir) : path_(dir + "/.lock") {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) throw DataError(path_ + ": cannot create the run's lock file (" + std::strerror(errno) + ")");
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {0};
            const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
            ::close(fd_);
            fd_ = -1;
            const std::string pid = n > 0 ? std::string(buf, size_t(n)) : std::string("unknown");
            throw UsageError(dir + " is in use by another training run (pid " + pid +
                             "); wait for it, or choose another --out");
        }
        const std::string pid = std::to_string(::getpid());
        if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
            // The lock holds without the pid; only the message of a second run is poorer.
        }
    }
    ~FolderLock() {
        if (fd_ >= 0) ::close(fd_);  // releases the lock
    }
    FolderLock(const FolderLock&) = delete;
    FolderLock& operator=(const FolderLock&) = delete;

private:
    std::string path_;
    int fd_ = -1;
};

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

}  // namespace

EngineOptions engine_options(const EngineFlags& f) {
    if (f.gemm != "cublas" && f.gemm != "custom") throw UsageError("--gemm must be cublas or custom, not '" + f.gemm + "'");
    // Refused on either engine, so that a command line means the same on both (the CUDA engine
    // refuses it too, for callers of the API).
    if (f.gemm == "custom" && f.tf32)
        throw UsageError("--tf32 with --gemm custom: TF32 is cuBLAS's; the custom dense products are FP32");
    EngineOptions e;
    e.device = f.device;
    e.threads = f.threads;
    e.conv = parse_conv_algo(f.conv);
    e.graphs = f.graphs;
    e.profile = f.profile;
    e.fused = f.fused;
    e.tf32 = f.tf32;
    e.custom_gemm = f.gemm == "custom";
    e.side_stream = f.side_stream;
    e.half_bank = f.half_bank;
    return e;
}

void note_cpu_engine_flags(const std::string& engine_name, const EngineFlags& f) {
    if (engine_name.rfind("cuda", 0) == 0) return;
    std::string ignored;
    if (f.fused) ignored += " --fused";
    if (f.side_stream) ignored += " --side-stream";
    if (f.conv != "custom") ignored += " --conv " + f.conv;
    if (f.gemm != "cublas") ignored += " --gemm " + f.gemm;
    if (!ignored.empty()) std::fprintf(stderr, "note:%s: CUDA engine options, ignored on the CPU\n", ignored.c_str());
    if (f.tf32)
        std::fprintf(stderr, "note: --tf32 on the CPU is an emulation (TF32 operands, FP32 arithmetic): it measures "
                             "TF32's accuracy, and is slower, not faster\n");
}

std::vector<int> training_people(const PairSplit& split, const ImageBank& bank) {
    std::vector<int> fit = split.train_people;
    if (fit.empty())  // the tutorial protocol: its test pairs reuse the training people's images
        for (int p = 0; p < int(bank.people.size()); ++p) fit.push_back(p);
    return fit;
}

TrainResult with_pixel_branch(Backend& backend, const RecipeOptions& a, const ImageBank& bank, const PairSplit& split,
                              TrainResult res) {
    if (a.pixel_branch <= 0) return res;
    const PixelMetric metric = a.pixel_metric == "within" ? PixelMetric::Within : PixelMetric::Pca;
    backend.set_pixel_branch(
        fit_pixel_branch(bank, training_people(split, bank), a.pixel_branch, float(a.pixel_weight), metric, a.pixel_reg));
    // The hybrid distances need their own threshold, chosen as train_model chose the network's.
    if (split.val.size()) res.threshold = best_threshold(backend.bank_pair_distances(split.val), split.val.label);
    return res;
}

RunOutcome run_training(const RunSpec& spec, RunObserver& observer) {
    RecipeOptions a = spec.recipe;
    EngineFlags flags = spec.engine;
    std::string out = spec.out;
    TrainState resumed;
    nlohmann::json saved_history = nlohmann::json::array();
    const bool resuming = !spec.resume.empty();
    bool finishing = false;
    if (resuming) {
        const std::string state_file = spec.resume + "/state.safetensors";
        resumed = load_train_state(state_file);
        try {
            a = recipe_from_json(resumed.args_json);
            saved_history = nlohmann::json::parse(resumed.history_json);
            if (!saved_history.is_array()) throw DataError("not a list of epochs");
        } catch (const std::exception& e) {
            throw DataError(state_file + ": bad saved options or history (" + e.what() + ")");
        }
        // Options read from a file get the same validation as the command line's.
        if (const std::string p = recipe_problem(a); !p.empty()) throw DataError(state_file + ": saved options: " + p);
        if (resumed.progress.epoch < 1 || resumed.progress.next_batch < 0)
            throw DataError(state_file + ": bad epoch/batch position");
        check_given_options(spec.recipe, a, spec.given, spec.resume);
        keep_saved_precision(resumed.args_json, flags, spec.resume);
        for (const std::string& g : spec.given)
            if (g == "--checkpoint-every") a.checkpoint_every = spec.recipe.checkpoint_every;  // may change
        out = spec.resume;
        // A run that trained every epoch but was stopped before its model was written (killed,
        // or a full disk) is finished now: evaluation, model, summary and report.
        if (resumed.progress.epoch > a.epochs) {
            std::error_code ec;
            if (std::filesystem::exists(out + "/model.safetensors", ec) && std::filesystem::exists(out + "/summary.json", ec))
                throw UsageError(spec.resume + ": that run already finished (its model.safetensors is there)");
            finishing = true;
        }
    } else if (const std::string p = recipe_problem(a); !p.empty()) {
        throw UsageError(p);
    }
    const Preprocess pp = preprocess_of(a);
    const EngineOptions engine = engine_options(flags);

    // Everything that can be wrong with the input is found before the output folder is touched.
    const ImageBank bank = load_bank(a, pp);
    const PairSplit split = make_split(bank, a.protocol, a.train_people, a.test_people, a.seed);
    const Recipe h = make_recipe(a, bank.height, bank.width, steps_per_epoch(a, split));
    const ParamLayout layout = make_layout(h.net);
    if (resuming && resumed.params.size() != layout.total)
        throw DataError(spec.resume + "/state.safetensors: weights do not match the network");
    const std::string fingerprint = data_fingerprint(bank);
    if (resuming && !resumed.data_fingerprint.empty() && resumed.data_fingerprint != fingerprint)
        throw DataError("cannot resume " + spec.resume + ": the data changed since the run started (saved: " +
                        resumed.data_fingerprint + "; now: " + fingerprint + ")");
    // The engine before the folder: no GPU must not leave an empty output folder behind.
    auto backend = make_backend(h, engine);
    note_cpu_engine_flags(backend->name(), flags);
    prepare_out_dir(out);
    const FolderLock lock(out);
    backend->upload_images(bank);
    if (resuming) {
        backend->set_params(resumed.params);
        backend->set_opt_state(resumed.opt_state);
    } else {
        backend->set_params(glorot_init(layout, a.seed));
    }
    RunStart start;
    start.data = a.data.empty() ? "built-in synthetic faces" : a.data;
    start.people = int(bank.people.size());
    start.images = bank.size();
    start.width = bank.width;
    start.height = bank.height;
    start.protocol = a.protocol;
    start.train_pairs = split.train.size();
    start.val_pairs = split.val.size();
    start.test_pairs = split.test.size();
    start.device = backend->name();
    start.resumed = resuming;
    start.finishing = finishing;
    start.epoch = resuming ? resumed.progress.epoch : 1;
    start.next_batch = resuming ? resumed.progress.next_batch : 0;
    start.step = resuming ? resumed.progress.step : 0;
    start.epochs = a.epochs;
    start.batch = h.sampler == Recipe::Sampler::PK ? group_batch_images(group_source(split), h.P, h.K) : a.batch;
    start.recipe = a.recipe;
    start.batch_unit = h.sampler == Recipe::Sampler::PK ? "images" : "pairs";
    observer.started(start);

    // metrics.jsonl holds the finished epochs; a resumed run rewrites it from the saved history.
    nlohmann::json history = saved_history;
    const std::string metrics_path = out + "/metrics.jsonl";
    {
        std::string lines;
        for (const auto& e : history) lines += dump_json(e) + "\n";
        write_file_atomic(metrics_path, lines);
    }
    std::ofstream metrics(metrics_path, std::ios::app);
    if (!metrics) throw DataError(metrics_path + ": cannot open for writing");

    TrainOptions to;
    to.checkpoint_every = a.checkpoint_every;
    to.batch_by_batch = spec.crash_after_steps > 0;  // it kills at one exact step
    const std::string args_json = state_args_json(a, flags);
    const std::string state_path = out + "/state.safetensors";
    int current_epoch = start.epoch;
    // Checkpoints go to disk on their own thread: an epoch waits for the snapshot only.
    CheckpointWriter checkpoints(state_path);
    TrainCallbacks cb;
    cb.on_batch = [&](int done, int total, uint64_t step) {
        observer.batch(current_epoch, done, total);
        if (spec.stop && *spec.stop) throw RunInterrupted(int(*spec.stop));
        if (spec.crash_after_steps > 0 && step == uint64_t(spec.crash_after_steps)) {
            checkpoints.flush();  // the testing aid kills once the checkpoints due are on disk
            ::kill(::getpid(), SIGKILL);
        }
    };
    cb.on_epoch = [&](const EpochStats& s) {
        observer.epoch(s);
        history.push_back(epoch_json(s));
        metrics << epoch_json(s).dump() << "\n" << std::flush;
        current_epoch = s.epoch + 1;
    };
    cb.on_checkpoint = [&](const TrainProgress& p, std::vector<float> params) {
        TrainState st;
        st.args_json = args_json;
        st.history_json = dump_json(history);
        st.progress = p;
        st.params = std::move(params);
        st.opt_state = backend->opt_state();
        st.data_fingerprint = fingerprint;
        checkpoints.submit(std::move(st));
    };
    TrainProgress from;
    if (resuming) from = resumed.progress;
    const TrainResult trained = train_model(*backend, split, h, to, cb, from);
    checkpoints.flush();  // the finished run's state on disk before its model
    const TrainResult res = with_pixel_branch(*backend, a, bank, split, trained);

    RunOutcome outcome;
    outcome.out = out;
    outcome.threshold = res.threshold;
    const std::vector<int> oneshot_people = a.protocol == "people" ? split.test_people : std::vector<int>{};
    std::vector<float> test_d, emb;
    outcome.test = evaluate_model(*backend, bank, split.test, res.threshold, oneshot_people, a.seed, &test_d, &emb);
    if (a.protocol == "people") {
        // Open-set identification: the first half of the test people enrolled with one photo
        // each, every other photo of all test people a probe (the rest are strangers).
        const std::vector<int> gallery(split.test_people.begin(),
                                       split.test_people.begin() + (split.test_people.size() + 1) / 2);
        outcome.identification = identify_on_bank(emb, backend->embed_dim(), bank, gallery, split.test_people, 1,
                                                   kDefaultDraws, a.seed, false);
        outcome.identified = true;
    }
    if (flags.profile) outcome.profile = backend->profile_report();
    observer.evaluated(outcome);

    Model m;
    m.net = h.net;
    m.pre = pp;
    m.threshold = float(res.threshold);
    m.margin = h.margin;
    m.params = backend->params();
    m.pixel = backend->pixel_branch();
    m.extra = {{"protocol", a.protocol}, {"seed", std::to_string(a.seed)}, {"epochs", std::to_string(a.epochs)},
               {"optimizer", a.optimizer}};
    if (a.recipe != "tutorial") m.extra["recipe"] = a.recipe;  // the reference's files stay as they were
    save_model(out + "/model.safetensors", m);

    nlohmann::json summary = {{"protocol", a.protocol},
                              {"device", backend->name()},
                              {"epochs_as_graph", backend->epochs_as_graph()},  // CUDA: one graph an epoch
                              {"seed", a.seed},
                              {"epochs", a.epochs},
                              {"batch", a.batch},
                              {"optimizer", a.optimizer},
                              {"data", a.data.empty() ? "builtin" : a.data},
                              {"train_pairs", split.train.size()},
                              {"val_pairs", split.val.size()},
                              {"test_pairs", split.test.size()},
                              {"threshold", res.threshold},
                              {"epoch_seconds", nlohmann::json::array()},
                              {"history", history},
                              {"test", report_to_json(outcome.test)}};
    if (a.recipe != "tutorial") summary["recipe"] = nlohmann::json::parse(recipe_to_json(a));
    summary["recipe_name"] = a.recipe;
    if (!a.image_size.empty()) summary["image_size"] = a.image_size;  // the photos' size before preprocessing
    if (!spec.command.empty()) summary["command"] = spec.command;
    // The precision options, when on (a resumed run's command does not repeat them).
    if (flags.tf32) summary["tf32"] = true;
    if (flags.half_bank) summary["half_bank"] = true;
    {
        std::vector<double> secs;
        for (const auto& e : history) secs.push_back(e["seconds"].get<double>());
        std::sort(secs.begin(), secs.end());
        if (!secs.empty()) summary["seconds_per_epoch"] = secs[secs.size() / 2];  // median: the first epoch warms up
    }
    // What no learning gets on the same test pairs and one-shot draws: nearest neighbour on the
    // pixels and on eigenfaces fit on the training people (every person for the tutorial
    // protocol, whose test pairs reuse the training images anyway).
    {
        const std::vector<int> fit = training_people(split, bank);
        auto figures = [&](const std::vector<float>& e, int E) {
            const TestReport b = embedding_report(e, E, bank, split.test, res.threshold, oneshot_people, kDefaultDraws, a.seed);
            nlohmann::json j = {{"auc", b.auc}, {"eer", b.eer}, {"tar_at_far_1pct", b.tar_far1}};
            if (!oneshot_people.empty()) j["oneshot_accuracy"] = b.oneshot_accuracy;
            return j;
        };
        summary["baselines"]["pixels"] = figures(pixel_embeddings(bank), bank.image_elems());
        int k = 0;
        const std::vector<float> eig = eigenface_embeddings(bank, fit, 50, &k);
        summary["baselines"]["eigenfaces"] = figures(eig, k);
    }
    if (outcome.identified) summary["identification"] = identify_to_json(outcome.identification);
    for (const auto& e : history) summary["epoch_seconds"].push_back(e["seconds"]);
    write_file_atomic(out + "/summary.json", dump_json(summary, 2) + "\n");
    write_run_report(out, summary, test_d, split.test.label);
    return outcome;
}

}  // namespace siamese
