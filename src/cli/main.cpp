// siamese: train and use Siamese face-verification networks from the command line.
#include <cstdio>
#include <vector>

#include "commands.hpp"
#include "siamese/backend.hpp"
#include "siamese/common.hpp"

namespace siamese::cli {

namespace {
void add_device_threads(CLI::App* sub, std::string& device, int& threads) {
    sub->add_option("--device", device, "auto (the GPU when one answers), cpu or cuda")->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    sub->add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
}
}  // namespace

void add_engine_options(CLI::App* sub, EngineArgs& e) { add_device_threads(sub, e.device, e.threads); }

void add_engine_flags(CLI::App* sub, EngineFlags& f) {
    add_device_threads(sub, f.device, f.threads);
    sub->add_flag_callback("--no-graphs", [&f] { f.graphs = false; },
                           "CUDA: launch every kernel instead of replaying a captured graph");
    add_step_flags(sub, f);
}

void add_step_flags(CLI::App* sub, EngineFlags& f) {
    sub->add_option("--conv", f.conv, "CUDA convolutions: custom (fused kernels), cudnn, or tiled (the fused kernels with each image in shared memory; not yet measured on a GPU)")->capture_default_str()
        ->check(CLI::IsMember({"custom", "cudnn", "tiled"}));
    sub->add_flag("--fused", f.fused,
                  "CUDA: the fused step (10 launches a step for the reference recipe instead of 25; `siamese plan --fused`); "
                  "not yet checked on a GPU");
    sub->add_flag("--tf32", f.tf32,
                  "The dense layers' products on TF32 operands (10 fraction bits): CUDA on tensor cores, the CPU emulates "
                  "it (each operand cut to TF32, FP32 sums) to measure its accuracy: no loss on unseen ORL people "
                  "(docs/gpu-speed.md); not yet run on a GPU");
    sub->add_option("--gemm", f.gemm,
                    "CUDA: the dense layers' products on cublas, or custom (the engine's own split-K kernel: one launch "
                    "each, FP32, deterministic); not yet measured on a GPU")
        ->capture_default_str()->check(CLI::IsMember({"cublas", "custom"}));
    sub->add_flag("--side-stream", f.side_stream,
                  "CUDA: each layer's weight gradient on a second stream beside the input-gradient chain (the same bits "
                  "as one stream); not yet checked on a GPU");
    sub->add_flag("--half-bank", f.half_bank,
                  "Hold the image bank in FP16: each pixel rounded once to the nearest FP16 value (at most 2.4e-4 for "
                  "pixels in [0, 1]); the CUDA engine reads half the bytes, the CPU trains on the same rounded values "
                  "(docs/gpu-speed.md); not yet checked on a GPU");
}

std::string& command_line() {
    static std::string line;
    return line;
}

CLI::Validator seed_validator() {
    return CLI::Validator(
        [](std::string& s) -> std::string {
            const char* msg = "must be a whole number from 0 to 18446744073709551615";
            if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) return msg;
            if (s.size() == 20 && s > "18446744073709551615") return msg;
            return "";
        },
        "UINT64");
}

}  // namespace siamese::cli

int main(int argc, char** argv) {
    // The command as typed (shell-quoted where needed), for the run's summary and report.
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a.empty() || a.find_first_of(" \t'\"$\\") != std::string::npos) {
            std::string q = "'";
            for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
            a = q + "'";
        }
        siamese::cli::command_line() += (i ? " " : "") + a;
    }
    CLI::App app{"siamese: a CUDA training engine for Siamese face verification", "siamese"};
    app.require_subcommand(1);
    app.set_version_flag("--version", [] { return "siamese " SIAMESE_VERSION "\n" + siamese::cuda_build_info(); });
    const std::vector<std::pair<std::string, siamese::cli::Runner>> commands = {
        {"train", siamese::cli::add_train(app)},     {"eval", siamese::cli::add_eval(app)},
        {"verify", siamese::cli::add_verify(app)},   {"inspect", siamese::cli::add_inspect(app)},
        {"synth", siamese::cli::add_synth(app)},     {"pairs", siamese::cli::add_pairs(app)},
        {"enroll", siamese::cli::add_enroll(app)},   {"identify", siamese::cli::add_identify(app)},
        {"cv", siamese::cli::add_cv(app)},           {"plan", siamese::cli::add_plan(app)}};
    if (argc > 1 && argv[1][0] != '-') {
        bool known = false;
        for (const auto& c : commands) known |= c.first == argv[1];
        if (!known) {
            std::fprintf(stderr, "siamese: error: unknown command '%s' (commands: train, cv, eval, verify, inspect, synth, pairs, enroll, identify, plan; see --help)\n", argv[1]);
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        std::fprintf(stderr, "siamese: error: %s (see --help)\n", e.what());
        return 2;
    }
    try {
        for (const auto& [name, run] : commands)
            if (app.get_subcommand(name)->parsed()) return run();
    } catch (const siamese::UsageError& e) {
        std::fprintf(stderr, "siamese: error: %s\n", e.what());
        return 2;
    } catch (const siamese::DataError& e) {
        std::fprintf(stderr, "siamese: error: %s\n", e.what());
        return siamese::kExitData;
    } catch (const siamese::DeviceError& e) {
        std::fprintf(stderr, "siamese: device error: %s\n", e.what());
        return siamese::kExitDevice;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "siamese: internal error: %s\n", e.what());
        return 3;
    }
    return 2;
}
