// siamese eval: the test figures of a trained model on any folder of people (all pairs among
// them), with one-shot identification.
#include <cstdio>

#include "commands.hpp"
#include "siamese/checkpoint.hpp"
#include "siamese/common.hpp"
#include "siamese/trainer.hpp"

namespace siamese::cli {

Runner add_eval(CLI::App& app) {
    auto* sub = app.add_subcommand("eval", "Evaluate a model on all pairs among a folder's people");
    struct Args {
        std::string model, data, people, device = "auto";
        bool json = false;
        int threads = 0;
        uint64_t seed = 1;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("--data", a->data, "Folder with one sub-folder of PGM images per person")->required();
    sub->add_option("--people", a->people, "People to use, 1-based, e.g. 31-40 (default: all)");
    sub->add_flag("--json", a->json, "Print one JSON object instead of text");
    sub->add_option("--seed", a->seed, "Seed of the one-shot gallery draws")->capture_default_str();
    sub->add_option("--threads", a->threads, "CPU threads (0: all cores)")->capture_default_str();
    sub->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    return [a]() {
        const Model m = load_model(a->model);
        const ImageBank bank = load_dataset(a->data, m.pre);
        if (bank.height != m.net.in_h || bank.width != m.net.in_w)
            throw DataError(a->data + ": images preprocess to " + std::to_string(bank.width) + "x" +
                            std::to_string(bank.height) + " but the model takes " + std::to_string(m.net.in_w) + "x" +
                            std::to_string(m.net.in_h));
        const int n = int(bank.people.size());
        std::vector<int> people;
        if (a->people.empty())
            for (int p = 0; p < n; ++p) people.push_back(p);
        else
            people = parse_people_list(a->people, n, "--people");
        if (people.size() < 2) throw UsageError("--people must name at least two people");
        TrainHyper h;
        h.net = m.net;
        h.margin = m.margin;
        auto backend = make_backend(a->device, h, a->threads);
        backend->upload_images(bank);
        backend->set_params(m.params);
        const PairSet pairs = all_pairs(bank, people);
        const TestReport r = evaluate_model(*backend, bank, pairs, m.threshold, people, a->seed);
        if (a->json) {
            nlohmann::json j = report_to_json(r);
            j["threshold"] = m.threshold;
            j["people"] = people.size();
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%zu people, model threshold %.4f\n", people.size(), m.threshold);
            print_report(r, m.threshold);
        }
        return 0;
    };
}

}  // namespace siamese::cli
