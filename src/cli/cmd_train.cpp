// siamese train: options -> run_training (src/run.cpp) -> printed progress and figures.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/run.hpp"

namespace siamese::cli {

namespace {

// A live progress line on a terminal, redrawn in place at most 10 times a second.
class Progress {
public:
    explicit Progress(bool enabled) : enabled_(enabled) {}
    // `batch_items` pairs (pair sampler) or images (P-K sampler) per batch, named by `unit`.
    void batch(int epoch, int epochs, int done, int total, int batch_items, const char* unit) {
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
        const double rate = secs > 0 ? counted * double(batch_items) / secs : 0.0;
        const double eta = counted > 0 ? secs / counted * (total - done) : 0.0;
        std::fprintf(stdout, "\r\033[K  epoch %d/%d  batch %d/%d  %.0f %s/s  ETA %.1fs", epoch, epochs, done, total, rate,
                     unit, eta);
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

// What `siamese train` prints as the run goes.
class Printer final : public RunObserver {
public:
    Printer(bool quiet, bool profile) : quiet_(quiet), profile_(profile), progress_(!quiet && ::isatty(STDOUT_FILENO)) {}
    void started(const RunStart& s) override {
        epochs_ = s.epochs;
        batch_ = s.batch;
        unit_ = s.batch_unit;
        if (quiet_) return;
        std::printf("data %s: %d people, %d images %dx%d; protocol %s: %d train, %d validation, %d test pairs; device %s\n",
                    s.data.c_str(), s.people, s.images, s.width, s.height, s.protocol.c_str(), s.train_pairs, s.val_pairs,
                    s.test_pairs, s.device.c_str());
        if (s.resumed)
            std::printf("resuming at epoch %d, batch %d (step %llu)\n", s.epoch, s.next_batch + 1,
                        static_cast<unsigned long long>(s.step));
        std::fflush(stdout);
    }
    void batch(int epoch, int done, int total) override { progress_.batch(epoch, epochs_, done, total, batch_, unit_); }
    void epoch(const EpochStats& s) override {
        progress_.clear();
        if (quiet_) return;
        std::printf("epoch %3d/%d  loss %.4f  val_loss %.4f  val_acc %.4f  %.2fs\n", s.epoch, epochs_, s.train_loss,
                    s.val_loss, s.val_accuracy, s.seconds);
        std::fflush(stdout);
    }
    void evaluated(const RunOutcome& o) override {
        print_report(o.test, o.threshold);
        if (o.identified) print_identify(o.identification);
        if (profile_)
            std::printf("%s", o.profile.empty() ? "profile: no training step was timed\n" : o.profile.c_str());
    }

private:
    bool quiet_, profile_;
    Progress progress_;
    int epochs_ = 0, batch_ = 0;
    const char* unit_ = "pairs";
};

}  // namespace

Runner add_train(CLI::App& app) {
    auto* sub = app.add_subcommand("train", "Train a Siamese network and report honest test figures");
    auto spec = std::make_shared<RunSpec>();
    auto quiet = std::make_shared<bool>(false);
    RecipeOptions* a = &spec->recipe;
    RunSpec* r = spec.get();
    add_recipe_options(sub, *a);
    sub->add_option("--checkpoint-every", a->checkpoint_every,
                    "Also save the training state every N steps (it is always saved at every epoch end)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    add_engine_flags(sub, r->engine);
    sub->add_option("--out", r->out, "Output folder")->capture_default_str();
    sub->add_option("--resume", r->resume, "Continue the run saved in this folder (its state.safetensors); other training options are taken from it");
    sub->add_flag("--profile", r->engine.profile,
                  "Time every phase of the training steps and print a table at the end (CUDA: CUDA events, recorded inside "
                  "the replayed graphs; with --no-graphs, around eager launches, host gaps included)");
    sub->add_flag("--quiet", *quiet, "Print only the final figures");
    sub->add_option("--crash-after-steps", r->crash_after_steps, "Testing aid: kill this process (SIGKILL) after N steps")
        ->group("");
    return [spec, quiet, sub]() {
        const std::vector<std::string> given = given_recipe_options(sub);
        if (spec->recipe.recipe == "strong" && spec->resume.empty()) apply_strong_recipe(spec->recipe, given);
        if (!spec->resume.empty()) {
            // Options given with --resume must agree with the saved run (checked by run_training).
            spec->given = given;
            if (sub->count("--checkpoint-every")) spec->given.push_back("--checkpoint-every");
            if (sub->count("--out") && spec->out != spec->resume)
                throw UsageError("--out " + spec->out + " differs from --resume " + spec->resume +
                                 " (a resumed run writes into its own folder)");
            if (sub->count("--checkpoint-every"))
                std::printf("note: --checkpoint-every %d applies from now on\n", spec->recipe.checkpoint_every);
        }
        spec->command = command_line();
        Printer printer(*quiet, spec->engine.profile);
        // SIGINT/SIGTERM stop the run at the next batch; the last checkpoint stays for --resume.
        static volatile std::sig_atomic_t stop = 0;
        struct sigaction sa {};
        sa.sa_handler = [](int sig) { stop = sig; };
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, nullptr);
        ::sigaction(SIGTERM, &sa, nullptr);
        spec->stop = &stop;
        RunOutcome o;
        try {
            o = run_training(*spec, printer);
        } catch (const RunInterrupted& e) {
            const std::string dir = spec->resume.empty() ? spec->out : spec->resume;
            std::fprintf(stderr, "\nsiamese: stopped by %s; resume with: siamese train --resume %s\n",
                         e.signal == SIGINT ? "SIGINT" : "SIGTERM", dir.c_str());
            return 128 + e.signal;
        }
        if (!*quiet)
            std::printf("wrote %s/: model.safetensors, metrics.jsonl, summary.json, report.html (loss.svg, roc.svg, distances.svg)\n",
                        o.out.c_str());
        return 0;
    };
}

}  // namespace siamese::cli
