// The `siamese` subcommands. Each add_*() registers its options on the app and returns a
// runner called after parsing; runners throw DataError (exit 1), UsageError (exit 2) or
// DeviceError (exit 4).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "siamese/backend.hpp"
#include "siamese/gallery.hpp"
#include "siamese/metrics.hpp"
#include "siamese/run.hpp"

namespace siamese::cli {

using Runner = std::function<int()>;

// The engine options every command shares, with one default and one validation:
// --device auto|cpu|cuda (auto: the GPU when one answers), --threads 0..1024 (0: all cores).
struct EngineArgs {
    std::string device = "auto";
    int threads = 0;
};
void add_engine_options(CLI::App* sub, EngineArgs& e);
// The training engine's options of train and cv: --device and --threads as above, and the CUDA
// engine's --conv, --no-graphs, --fused, --tf32, --gemm, --side-stream, --half-bank.
void add_engine_flags(CLI::App* sub, EngineFlags& f);
// Of those, the options that shape the CUDA step (plan takes these alone): --conv, --fused,
// --tf32, --gemm, --side-stream, --half-bank.
void add_step_flags(CLI::App* sub, EngineFlags& f);
// The command line this process was started with (shell-quoted), for summaries and reports.
std::string& command_line();
// A seed: digits only, 0 .. 2^64-1 ("-1" and "1e23" are refused, not wrapped or rounded).
CLI::Validator seed_validator();

// The recipe options of `train` and `cv`, and which of them the command line gave.
void add_recipe_options(CLI::App* sub, RecipeOptions& a);
std::vector<std::string> given_recipe_options(CLI::App* sub);

Runner add_train(CLI::App& app);
Runner add_cv(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_verify(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_synth(CLI::App& app);
Runner add_pairs(CLI::App& app);
Runner add_enroll(CLI::App& app);
Runner add_identify(CLI::App& app);
Runner add_plan(CLI::App& app);

}  // namespace siamese::cli
