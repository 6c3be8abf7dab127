// siamese eval: the test figures of a trained model on any folder of people (all pairs among
// them, with one-shot identification), or with --identify the open-set identification figures.
#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "model_io.hpp"
#include "siamese/baselines.hpp"
#include "siamese/common.hpp"
#include "siamese/jsonio.hpp"
#include "siamese/trainer.hpp"

namespace siamese::cli {

Runner add_eval(CLI::App& app) {
    auto* sub = app.add_subcommand("eval", "Evaluate a model on all pairs among a folder's people (or --identify)");
    struct Args {
        EngineArgs engine;
        std::string model, data, people, gallery_people, probe_people;
        bool json = false, identify = false, mean = false, baselines = false;
        std::string fit_people;
        int gallery_images = 1, draws = 20;
        uint64_t seed = 1;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("--data", a->data, "Folder with one sub-folder of photos (PGM, PNG, JPEG) per person")->required();
    sub->add_option("--people", a->people, "People to use, 1-based, e.g. 31-40 (default: all)");
    sub->add_flag("--identify", a->identify, "Identification: enroll --gallery-people, probe --probe-people");
    sub->add_option("--gallery-people", a->gallery_people, "--identify: people enrolled, e.g. 31-35");
    sub->add_option("--probe-people", a->probe_people, "--identify: people whose other photos are probes (default: --people or all); those not enrolled are strangers");
    sub->add_option("--gallery-images", a->gallery_images, "--identify: photos enrolled per person (drawn at random)")
        ->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--draws", a->draws, "Seeded random draws averaged (one-shot and --identify)")->capture_default_str()
        ->check(CLI::Range(1, 100000));
    sub->add_flag("--mean", a->mean, "--identify: compare with each person's mean embedding");
    sub->add_flag("--baselines", a->baselines,
                  "Also the same figures for nearest neighbour on raw pixels and on eigenfaces (PCA-50 fit on --fit-people)");
    sub->add_option("--fit-people", a->fit_people,
                    "--baselines: people the eigenfaces are fit on (default: every person of the folder not in --people)");
    sub->add_flag("--json", a->json, "Print one JSON object instead of text");
    sub->add_option("--seed", a->seed, "Seed of the gallery draws")->capture_default_str()
        ->check(seed_validator());
    add_engine_options(sub, a->engine);
    return [a]() {
        LoadedModel m = open_model(a->model, a->engine.device, a->engine.threads);
        // Photos of another size are fit to the model's input (centre crop, then resampled).
        const int f = m.model.pre.downsample;
        const ImageBank bank = load_dataset(a->data, m.model.pre, m.model.net.in_w * f, m.model.net.in_h * f);
        if (bank.height != m.model.net.in_h || bank.width != m.model.net.in_w)
            throw DataError(a->data + ": images preprocess to " + std::to_string(bank.width) + "x" +
                            std::to_string(bank.height) + " but the model takes " + std::to_string(m.model.net.in_w) +
                            "x" + std::to_string(m.model.net.in_h));
        const int n = int(bank.people.size());
        auto people_or_all = [&](const std::string& spec, const char* what) {
            std::vector<int> v;
            if (spec.empty())
                for (int p = 0; p < n; ++p) v.push_back(p);
            else
                v = parse_people_list(spec, n, what);
            return v;
        };
        const std::vector<int> people = people_or_all(a->people, "--people");
        m.backend->upload_images(bank);
        if (a->identify) {
            if (a->gallery_people.empty()) throw UsageError("--identify needs --gallery-people");
            const std::vector<int> gallery = parse_people_list(a->gallery_people, n, "--gallery-people");
            const std::vector<int> probes = a->probe_people.empty() ? people : parse_people_list(a->probe_people, n, "--probe-people");
            const IdentifyReport r = identify_on_bank(m.backend->embed_bank(), m.backend->embed_dim(), bank, gallery, probes,
                                                      a->gallery_images, a->draws, a->seed, a->mean);
            // No probe at all: the rates would read 0.0000 as if measured.
            if (r.known_probes == 0 && r.stranger_probes == 0)
                throw UsageError("--identify: no probe photos (every photo of the probe people was enrolled; use fewer "
                                 "--gallery-images or more --probe-people)");
            if (a->json)
                std::printf("%s\n", dump_json(identify_to_json(r)).c_str());
            else
                print_identify(r);
            return 0;
        }
        if (people.size() < 2) throw UsageError("--people must name at least two people");
        const PairSet pairs = all_pairs(bank, people, a->seed);
        const TestReport r = evaluate_model(*m.backend, bank, pairs, m.model.threshold, people, a->seed, nullptr, nullptr,
                                              a->draws);
        // Baselines on the same pairs and draws: no threshold of their own (accuracy at the
        // model's is meaningless for them), so their AUC, EER, TAR and one-shot are the figures.
        std::vector<std::pair<std::string, TestReport>> base;
        std::string eigen_note;
        if (a->baselines) {
            auto report_of = [&](const std::vector<float>& emb, int E) {
                return embedding_report(emb, E, bank, pairs, m.model.threshold, people, a->draws, a->seed);
            };
            base.push_back({"pixels", report_of(pixel_embeddings(bank), bank.image_elems())});
            std::vector<int> fit;
            if (!a->fit_people.empty())
                fit = parse_people_list(a->fit_people, n, "--fit-people");
            else
                for (int p = 0; p < n; ++p)
                    if (std::find(people.begin(), people.end(), p) == people.end()) fit.push_back(p);
            if (fit.empty()) {
                eigen_note = "eigenfaces skipped: no people left to fit them on (give --fit-people, e.g. the training people)";
            } else {
                int k = 0;
                const std::vector<float> eig = eigenface_embeddings(bank, fit, 50, &k);
                base.push_back({"eigenfaces", report_of(eig, k)});
            }
        }
        if (a->json) {
            nlohmann::json j = report_to_json(r);
            j["threshold"] = m.model.threshold;
            j["people"] = people.size();
            for (const auto& [name, b] : base) j["baselines"][name] = report_to_json(b);
            if (!eigen_note.empty()) j["baselines"]["note"] = eigen_note;
            std::printf("%s\n", dump_json(j).c_str());
        } else {
            std::printf("%zu people, model threshold %.4f\n", people.size(), m.model.threshold);
            print_report(r, m.model.threshold);
            for (const auto& [name, b] : base)
                std::printf("baseline %-10s ROC AUC %.4f  EER %.4f  TAR at FAR 1%% %.4f  one-shot %.4f\n", name.c_str(), b.auc,
                            b.eer, b.tar_far1, b.oneshot_accuracy);
            if (!eigen_note.empty()) std::printf("%s\n", eigen_note.c_str());
        }
        return 0;
    };
}

}  // namespace siamese::cli
