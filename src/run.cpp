// run_training: the whole of `siamese train` but the command line and the printing.
#include "siamese/run.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "siamese/backend.hpp"
#include "siamese/files.hpp"
#include "siamese/model.hpp"
#include "siamese/safetensors.hpp"
#include "siamese/common.hpp"
#include "siamese/report.hpp"
#include "siamese/synth.hpp"
#include "siamese/train_state.hpp"

namespace siamese {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RecipeOptions, data, protocol, train_people, test_people, optimizer, resize, conv_filters,
                                   dense, epochs, batch, downsample, kernel, pool, checkpoint_every, lr, margin,
                                   conv_dropout, dense_dropout, seed)

std::string recipe_to_json(const RecipeOptions& r) { return nlohmann::json(r).dump(); }

RecipeOptions recipe_from_json(const std::string& json) {
    try {
        return nlohmann::json::parse(json).get<RecipeOptions>();
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

RunOutcome run_training(const RunSpec& spec, RunObserver& observer) {
    RecipeOptions a = spec.recipe;
    std::string out = spec.out;
    TrainState resumed;
    const bool resuming = !spec.resume.empty();
    if (resuming) {
        resumed = load_train_state(spec.resume + "/state.safetensors");
        try {
            a = recipe_from_json(resumed.args_json);
        } catch (const DataError& e) {
            throw DataError(spec.resume + "/state.safetensors: " + e.what());
        }
        out = spec.resume;
        if (resumed.progress.epoch > a.epochs) throw UsageError(spec.resume + ": that run already finished");
    }
    Preprocess pp;
    pp.downsample = a.downsample;
    pp.mode = a.resize == "area" ? ResizeMode::Area : ResizeMode::Stride;
    Recipe h;
    h.net.conv_filters = parse_int_list(a.conv_filters, "--conv-filters");
    h.net.dense = parse_int_list(a.dense, "--dense");
    h.net.kernel = a.kernel;
    h.net.pool = a.pool;
    h.net.conv_dropout = float(a.conv_dropout);
    h.net.dense_dropout = float(a.dense_dropout);
    h.opt.kind = parse_optimizer(a.optimizer);
    h.opt.lr = float(a.lr);
    h.margin = float(a.margin);
    h.seed = a.seed;
    h.epochs = a.epochs;
    h.batch = a.batch;
    EngineOptions engine;
    engine.device = spec.device;
    engine.threads = spec.threads;
    engine.conv = parse_conv_algo(spec.conv);
    engine.graphs = spec.graphs;
    engine.profile = spec.profile;

    // Everything that can be wrong with the input is found before the output folder is touched.
    const ImageBank bank = a.data.empty() ? synth_bank(SynthOptions{}, pp) : load_dataset(a.data, pp);
    h.net.in_h = bank.height;
    h.net.in_w = bank.width;
    h.net.validate();
    const PairSplit split = make_split(bank, a.protocol, a.train_people, a.test_people, a.seed);
    const ParamLayout layout = make_layout(h.net);
    if (resuming && resumed.params.size() != layout.total)
        throw DataError(spec.resume + "/state.safetensors: weights do not match the network");
    prepare_out_dir(out);

    auto backend = make_backend(h, engine);
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
    start.epoch = resuming ? resumed.progress.epoch : 1;
    start.next_batch = resuming ? resumed.progress.next_batch : 0;
    start.step = resuming ? resumed.progress.step : 0;
    start.epochs = a.epochs;
    start.batch = a.batch;
    observer.started(start);

    // metrics.jsonl holds the finished epochs; a resumed run rewrites it from the saved history.
    nlohmann::json history = resuming ? nlohmann::json::parse(resumed.history_json) : nlohmann::json::array();
    const std::string metrics_path = out + "/metrics.jsonl";
    {
        std::string lines;
        for (const auto& e : history) lines += e.dump() + "\n";
        write_file_atomic(metrics_path, lines);
    }
    std::ofstream metrics(metrics_path, std::ios::app);
    if (!metrics) throw DataError(metrics_path + ": cannot open for writing");

    TrainOptions to;
    to.checkpoint_every = a.checkpoint_every;
    const std::string args_json = recipe_to_json(a);
    const std::string state_path = out + "/state.safetensors";
    int current_epoch = start.epoch;
    TrainCallbacks cb;
    cb.on_batch = [&](int done, int total, uint64_t step) {
        observer.batch(current_epoch, done, total);
        if (spec.crash_after_steps > 0 && step == uint64_t(spec.crash_after_steps)) ::kill(::getpid(), SIGKILL);
    };
    cb.on_epoch = [&](const EpochStats& s) {
        observer.epoch(s);
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
        save_train_state(state_path, st);
    };
    TrainProgress from;
    if (resuming) from = resumed.progress;
    const TrainResult res = train_model(*backend, split, h, to, cb, from);

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
    if (spec.profile) outcome.profile = backend->profile_report();
    observer.evaluated(outcome);

    Model m;
    m.net = h.net;
    m.pre = pp;
    m.threshold = float(res.threshold);
    m.margin = h.margin;
    m.params = backend->params();
    m.extra = {{"protocol", a.protocol}, {"seed", std::to_string(a.seed)}, {"epochs", std::to_string(a.epochs)},
               {"optimizer", a.optimizer}};
    save_model(out + "/model.safetensors", m);

    nlohmann::json summary = {{"protocol", a.protocol},
                              {"device", backend->name()},
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
    if (outcome.identified) summary["identification"] = identify_to_json(outcome.identification);
    for (const auto& e : history) summary["epoch_seconds"].push_back(e["seconds"]);
    write_file_atomic(out + "/summary.json", summary.dump(2) + "\n");
    write_run_report(out, summary, test_d, split.test.label);
    return outcome;
}

}  // namespace siamese
