// siamese verify: the distance between two photos and the verdict at the model's threshold (or
// --threshold); with --pairs, every pair of a list, each photo embedded once, and the figures
// (accuracy, AUC, EER, TAR at FAR) when the list is labelled.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "model_io.hpp"
#include "siamese/common.hpp"
#include "siamese/jsonio.hpp"
#include "siamese/pair_list.hpp"

namespace siamese::cli {

Runner add_verify(CLI::App& app) {
    auto* sub = app.add_subcommand("verify", "Tell whether two photos (PGM, PNG or JPEG, any size) show the same person");
    struct Args {
        EngineArgs engine;
        std::string model, a, b, pairs, root, fit = "crop";
        double threshold = -1;  // < 0: the model's
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("first", a->a, "First photo (PGM, PNG or JPEG)");
    sub->add_option("second", a->b, "Second photo");
    sub->add_option("--pairs", a->pairs,
                    "A text file of pairs instead: per line FIRST SECOND [LABEL] (tab-separated when a path has spaces; "
                    "LABEL 1/0 or same/different, on every line or none; '#' comments); labelled, the figures follow");
    sub->add_option("--root", a->root, "--pairs: relative paths of the list are taken from this folder (default: the current one)");
    add_threshold_option(sub, a->threshold);
    sub->add_flag("--json", a->json, "One JSON object: the threshold, every pair, and the figures when labelled");
    add_fit_option(sub, a->fit);
    add_engine_options(sub, a->engine);
    return [a]() {
        PairList list;
        if (a->pairs.empty() && !a->root.empty()) throw UsageError("verify: --root is for the paths of a --pairs list");
        if (!a->pairs.empty()) {
            if (!a->a.empty()) throw UsageError("verify: give two photos or --pairs FILE, not both");
            list = read_pair_list(a->pairs);
            if (!a->root.empty())
                for (auto* side : {&list.first, &list.second})
                    for (std::string& f : *side)
                        if (std::filesystem::path(f).is_relative()) f = (std::filesystem::path(a->root) / f).string();
        } else {
            if (a->b.empty()) throw UsageError("verify: two photos are needed (first and second), or --pairs FILE");
            list.first = {a->a};
            list.second = {a->b};
            list.line = {0};
        }
        // Each photo once, in the order first seen: a gallery-sized list embeds its photos once.
        std::map<std::string, int> index;
        std::vector<std::string> files;
        PairSet set;
        for (int i = 0; i < list.size(); ++i) {
            int k[2];
            for (int s = 0; s < 2; ++s) {
                const std::string& f = s ? list.second[i] : list.first[i];
                auto [it, fresh] = index.emplace(f, int(files.size()));
                if (fresh) {
                    std::error_code ec;
                    if (!a->pairs.empty() && !std::filesystem::exists(f, ec))
                        throw DataError(a->pairs + ":" + std::to_string(list.line[i]) + ": " + f + ": no such file");
                    files.push_back(f);
                }
                k[s] = it->second;
            }
            set.push(k[0], k[1], list.label.empty() ? 0.0f : float(list.label[i]));
        }
        LoadedModel m = open_model(a->model, a->engine.device, a->engine.threads);
        const std::vector<float> emb = embed_files(m, files, parse_fit(a->fit));
        const std::vector<float> d = pair_distances(emb, m.backend->embed_dim(), set);
        const double thr = a->threshold >= 0 ? a->threshold : m.model.threshold;
        const bool labelled = !list.label.empty();
        const int genuine = labelled ? set.genuine() : 0;
        const bool figures = labelled && genuine > 0 && genuine < set.size();  // AUC and EER need both kinds
        if (a->json) {
            nlohmann::json pairs = nlohmann::json::array();
            for (int i = 0; i < list.size(); ++i) {
                nlohmann::json p{{"first", list.first[i]}, {"second", list.second[i]}, {"distance", d[i]}, {"same", d[i] < thr}};
                if (labelled) p["label"] = list.label[i];
                pairs.push_back(p);
            }
            nlohmann::json j{{"threshold", thr}, {"pairs", pairs}};
            if (figures) j["figures"] = report_to_json(evaluate_pairs(d, set.label, thr));
            std::printf("%s\n", dump_json(j).c_str());
        } else if (a->pairs.empty()) {
            std::printf("distance %.4f  threshold %.4f  %s\n", d[0], thr, d[0] < thr ? "same" : "different");
        } else {
            std::printf("%d pairs, %zu photos, threshold %.4f (%s)\n", list.size(), files.size(), thr,
                        a->threshold >= 0 ? "--threshold" : "the model's");
            for (int i = 0; i < list.size(); ++i) {
                const bool same = d[i] < thr;
                std::printf("%s  %s  distance %.4f  %s%s\n", list.first[i].c_str(), list.second[i].c_str(), d[i],
                            same ? "same" : "different",
                            labelled && same != (list.label[i] == 1) ? (same ? "  (labelled different)" : "  (labelled same)") : "");
            }
            if (figures) print_report(evaluate_pairs(d, set.label, thr), thr);
        }
        if (labelled && !figures)
            std::fprintf(stderr, "note: the figures need both same and different pairs; %s has only %s ones\n",
                         a->pairs.c_str(), genuine > 0 ? "same" : "different");
        return 0;
    };
}

}  // namespace siamese::cli
