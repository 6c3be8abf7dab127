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

// "cpu", "cuda" or "auto" (CUDA when a device answers, else CPU).
// The test figures as printed lines and as the "test" object of summary.json.
void print_report(const TestReport& r, double threshold);
nlohmann::json report_to_json(const TestReport& r);
nlohmann::json identify_to_json(const IdentifyReport& r);
void print_identify(const IdentifyReport& r);

std::unique_ptr<Backend> make_backend(const std::string& device, const TrainHyper& h, int threads);

}  // namespace siamese::cli
