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
    // Beyond the reference recipe (its values are the defaults; `--recipe strong` sets others).
    std::string recipe = "tutorial";       // tutorial or strong: the defaults below come from it
    std::string embed_activation = "relu";  // relu or none: the embedding layer's activation
    bool l2_normalize = false;              // L2-normalise the embedding
    bool flip_average = false;              // inference: average the embeddings of each image and its mirror
    std::string sampler = "pairs";         // pairs (the epoch's pair list) or pk (P people x K images)
    int pk_people = 16, pk_images = 8;      // P and K of the pk sampler
    std::string mine = "all";              // pk: every pair weighs alike (all) or each class half (balanced)
    std::string loss = "contrastive";      // pk: the in-batch loss, contrastive or softmax
    double temperature = 0.05;              // pk, softmax: logits = dot products / temperature
    bool augment = false;                   // pk: random shift/rotation/zoom/flip/brightness per image and step
    double augment_strength = 1.0;          // scales every jitter range of the augmentation
    double augment_erase = 0.0;             // pk, augment: max side of a random erased rectangle (fraction)
    double weight_decay = 0.0;              // decoupled weight decay (p -= lr wd p every step)
    int pixel_branch = 0;                   // eigenface components appended to the embedding (0: none)
    double pixel_weight = 0.6;              // the pixel branch's share of the distance
    std::string pixel_metric = "pca";      // the branch's metric: pca (whitened eigenfaces) or within (PixelMetric)
    double pixel_reg = 0.1;                 // within: added to the within-person covariance's diagonal
    std::string schedule = "constant";     // constant, or cosine (decay to 0 over the run after a warm-up)
    double warmup = 0.05;                   // cosine: warm-up as a fraction of the run's steps
    std::string image_size;                 // "WxH": every photo of --data brought to it first ("": the first photo's size)
};
// `--recipe strong`: sets every recipe option the user did not give (named as on the command
// line in `given`) to the strong recipe's value; options given keep theirs.
void apply_strong_recipe(RecipeOptions& r, const std::vector<std::string>& given);
// The recipe options as the engine's Recipe (network, optimizer, sampler, augmentation) for
// images of in_h x in_w; steps_per_epoch sizes the cosine schedule.
Recipe make_recipe(const RecipeOptions& r, int in_h, int in_w, int steps_per_epoch);
// Steps per epoch of the options' sampler over a split.
int steps_per_epoch(const RecipeOptions& r, const PairSplit& split);
// Preprocessing of the options (downsampling factor and method).
Preprocess preprocess_of(const RecipeOptions& r);
// The options' images: the photos of --data (each brought to --image-size when given, else to
// the first photo's size; a note on stderr when that size makes a slow network), or the built-in
// synthetic faces. Throws DataError for bad photos or folders.
ImageBank load_bank(const RecipeOptions& r, const Preprocess& pp);
// The people a split trains on (every person for the tutorial protocol).
std::vector<int> training_people(const PairSplit& split, const ImageBank& bank);
// With --pixel-branch: fits it on the training people, sets it on the backend, and returns res
// with the threshold re-chosen on the validation pairs for the hybrid distances; else res.
TrainResult with_pixel_branch(Backend& backend, const RecipeOptions& a, const ImageBank& bank, const PairSplit& split,
                              TrainResult res);
std::string recipe_to_json(const RecipeOptions& r);
RecipeOptions recipe_from_json(const std::string& json);  // throws DataError
// The one validation of recipe options, for the command line and for options read from a saved
// run alike: "" when good, else what is wrong ("--lr nan: not a finite number > 0", ...).
std::string recipe_problem(const RecipeOptions& r);
// "92x112" -> 92, 112 (each 1..16384, digits only); false when malformed.
bool parse_image_size(const std::string& s, int* w, int* h);

// The engine options of train and cv as the command line gives them (not saved with a run).
struct EngineFlags {
    std::string device = "auto";  // auto, cpu or cuda
    int threads = 0;              // CPU threads (0: all cores)
    std::string conv = "custom";  // CUDA convolutions: custom, cudnn or tiled
    bool graphs = true, profile = false;
    bool fused = false;           // CUDA: the fused step (EngineOptions::fused)
    bool tf32 = false;            // TF32 dense products (CUDA; emulated on the CPU: EngineOptions::tf32)
    std::string gemm = "cublas";  // CUDA: the dense products, cublas or custom (EngineOptions::custom_gemm)
    bool side_stream = false;     // CUDA: the weight gradients on a second stream (EngineOptions::side_stream)
    bool half_bank = false;       // the image bank in FP16 (EngineOptions::half_bank; the CPU rounds alike)
};
EngineOptions engine_options(const EngineFlags& f);
// For a CPU engine (`engine_name` not "cuda..."): notes on stderr naming the CUDA-only options
// given, which it ignores, and saying that --tf32 is emulated there.
void note_cpu_engine_flags(const std::string& engine_name, const EngineFlags& f);

// How this process runs it (not saved): the engine, the folders, a testing aid.
struct RunSpec {
    RecipeOptions recipe;
    EngineFlags engine;
    std::string out = "run";
    std::string command;          // as typed, for summary.json and the report (informational)
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
    int epochs = 0, batch = 0;  // batch: pairs (pair sampler) or images (P-K) per step
    const char* batch_unit = "pairs";  // "pairs" or "images"
    std::string recipe;
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
