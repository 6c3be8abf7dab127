// The `siamese` subcommands. Each add_*() registers its options on the app and returns a
// runner called after parsing; runners throw DataError (exit 1) or UsageError (exit 2).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "siamese/backend.hpp"
#include "siamese/gallery.hpp"
#include "siamese/metrics.hpp"

namespace siamese::cli {

using Runner = std::function<int()>;

Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_verify(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_synth(CLI::App& app);
Runner add_pairs(CLI::App& app);
Runner add_enroll(CLI::App& app);
Runner add_identify(CLI::App& app);

}  // namespace siamese::cli
