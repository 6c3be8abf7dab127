// siamese identify: who is on each probe photo, among a gallery's people, or "unknown" when the
// nearest person is beyond the decision threshold (open set).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "siamese/jsonio.hpp"
#include "model_io.hpp"
#include "siamese/common.hpp"
#include "siamese/gallery.hpp"

namespace siamese::cli {

Runner add_identify(CLI::App& app) {
    auto* sub = app.add_subcommand("identify", "Identify the people on probe photos against a gallery");
    struct Args {
        EngineArgs engine;
        std::string model, gallery, fit = "crop";
        std::vector<std::string> probes;
        int top = 5;
        double threshold = -1;  // < 0: the model's
        bool json = false, mean = false;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors the gallery was enrolled with")->required();
    sub->add_option("--gallery", a->gallery, "gallery.safetensors from siamese enroll")->required();
    sub->add_option("probes", a->probes, "Probe photos or folders of them")->required();
    sub->add_option("--top", a->top, "People listed per probe")->capture_default_str()->check(CLI::Range(1, 1000000));
    add_threshold_option(sub, a->threshold);
    sub->add_flag("--mean", a->mean, "Compare with each person's mean embedding instead of their nearest photo");
    sub->add_flag("--json", a->json, "One JSON line per probe");
    add_fit_option(sub, a->fit);
    add_engine_options(sub, a->engine);
    return [a]() {
        LoadedModel m = open_model(a->model, a->engine.device, a->engine.threads);
        const Gallery g = load_gallery(a->gallery);
        check_gallery_fits(g, a->gallery, m.backend->embed_dim(), m.checksum, a->model);
        if (g.size() == 0) throw DataError(a->gallery + ": the gallery is empty");
        std::vector<std::string> files;
        for (const auto& p : a->probes)
            for (auto& f : image_files_under(p)) files.push_back(f);
        const std::vector<float> emb = embed_files(m, files, parse_fit(a->fit));
        const double thr = a->threshold >= 0 ? a->threshold : m.model.threshold;
        for (size_t i = 0; i < files.size(); ++i) {
            const auto ranking = rank_people(g, emb.data() + i * size_t(m.backend->embed_dim()), a->mean);
            const bool known = ranking[0].distance < thr;
            const std::string identity = known ? g.people[ranking[0].person] : "unknown";
            if (a->json) {
                nlohmann::json top = nlohmann::json::array();
                for (size_t k = 0; k < ranking.size() && int(k) < a->top; ++k)
                    top.push_back({{"person", g.people[ranking[k].person]}, {"distance", ranking[k].distance}});
                std::printf("%s\n", dump_json(nlohmann::json{{"probe", files[i]}, {"identity", identity},
                                                             {"distance", ranking[0].distance}, {"top", top}})
                                         .c_str());
            } else {
                std::printf("%s: %s (distance %.4f, threshold %.4f)", files[i].c_str(), identity.c_str(),
                            ranking[0].distance, thr);
                for (size_t k = 0; k < ranking.size() && int(k) < a->top; ++k)
                    std::printf("%s %s %.3f", k ? "," : "  top:", g.people[ranking[k].person].c_str(), ranking[k].distance);
                std::printf("\n");
            }
        }
        return 0;
    };
}

}  // namespace siamese::cli
