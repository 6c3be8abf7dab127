// A training run as one library call: data -> pairs -> training (checkpointed, resumable) ->
// honest test figures -> model.safetensors, metrics.jsonl, summary.json, state.safetensors and
// the report in the output folder. `siamese train` parses its options into a RunSpec, calls
// run_training and prints what the observer is told; tests call it without the binary.
#pragma once
#include <csignal>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "siamese/gallery.hpp"
#include "siamese/metrics.hpp"
#include "siamese/trainer.hpp"

namespace siamese {

// The options that define a run's result; saved in its training state, so --resume needs
// nothing else (the strings are parsed as the command line gives them).
struct RecipeOptions {
    std::string data, protocol = "tutorial", train_people, test_people, optimizer = "rmsprop";
    std::string resize = "stride", conv_filters = "6,12", dense = "128,50";
    int epochs = 13, batch = 128, downsample = 2, kernel = 3, pool = 2, checkpoint_every = 0;
    double lr = 1e-3, margin = 1.0, conv_dropout = 0.25, dense_dropout = 0.1;
    uint64_t seed = 1;
};
std::string recipe_to_json(const RecipeOptions& r);
RecipeOptions recipe_from_json(const std::string& json);  // throws DataError
// The one validation of recipe options, for the command line and for options read from a saved
// run alike: "" when good, else what is wrong ("--lr nan: not a finite number > 0", ...).
std::string recipe_problem(const RecipeOptions& r);

// How this process runs it (not saved): the engine, the folders, a testing aid.
struct RunSpec {
    RecipeOptions recipe;
    std::string device = "auto";  // auto, cpu or cuda
    int threads = 0;              // CPU threads (0: all cores)
    std::string conv = "custom";  // CUDA convolutions: custom or cudnn
    bool graphs = true, profile = false;
    std::string out = "run";
    std::string resume;           // a run folder to continue (then recipe and out come from it)
    // With resume: the recipe options the user gave (as on the command line, "--lr"); each must
    // equal the saved value (--checkpoint-every may change) or the run is refused, naming it.
    std::vector<std::string> given;
    int crash_after_steps = 0;    // testing aid: SIGKILL this process after N steps
    // Set (by a signal handler) to a signal number to stop at the next batch: RunInterrupted.
    const volatile std::sig_atomic_t* stop = nullptr;
};

// Thrown when spec.stop was set: the run stopped at a batch boundary; its last checkpoint (the
// last epoch end, or --checkpoint-every) is what a resume continues from.
struct RunInterrupted : std::runtime_error {
    int signal;
    explicit RunInterrupted(int sig) : std::runtime_error("interrupted"), signal(sig) {}
};

// What the run knows once its data, pairs and engine are ready.
struct RunStart {
    std::string data;  // the folder, or "built-in synthetic faces"
    int people = 0, images = 0, width = 0, height = 0;
    std::string protocol;
    int train_pairs = 0, val_pairs = 0, test_pairs = 0;
    std::string device;
    bool resumed = false;
    bool finishing = false;  // resumed after the last epoch: only evaluation and files remain
    int epoch = 1, next_batch = 0;
    uint64_t step = 0;
    int epochs = 0, batch = 0;
};

struct RunOutcome {
    std::string out;  // the folder written
    double threshold = 0.5;
    TestReport test;
    bool identified = false;
    IdentifyReport identification;
    std::string profile;  // per-phase table (CUDA engine with --profile), else empty
};

// Told as the run goes; every method may be left out.
class RunObserver {
public:
    virtual ~RunObserver() = default;
    virtual void started(const RunStart&) {}
    virtual void batch(int /*epoch*/, int /*done*/, int /*total*/) {}
    virtual void epoch(const EpochStats&) {}
    virtual void evaluated(const RunOutcome&) {}  // before the model and summary are written
};

// Throws UsageError (bad options), DataError (bad files), DeviceError (the GPU).
RunOutcome run_training(const RunSpec& spec, RunObserver& observer);

}  // namespace siamese
