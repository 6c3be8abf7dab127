// siamese verify: distance between two photos and the verdict at the model's threshold.
#include <cmath>
#include <cstdio>

#include "commands.hpp"
#include "model_io.hpp"
#include "siamese/rules.hpp"

namespace siamese::cli {

Runner add_verify(CLI::App& app) {
    auto* sub = app.add_subcommand("verify", "Tell whether two photos (PGM, PNG or JPEG, any size) show the same person");
    struct Args {
        EngineArgs engine;
        std::string model, a, b, fit = "crop";
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("first", a->a, "First photo (PGM, PNG or JPEG)")->required();
    sub->add_option("second", a->b, "Second photo")->required();
    add_fit_option(sub, a->fit);
    add_engine_options(sub, a->engine);
    return [a]() {
        LoadedModel m = open_model(a->model, a->engine.device, a->engine.threads);
        const std::vector<float> e = embed_files(m, {a->a, a->b}, parse_fit(a->fit));
        const int E = m.backend->embed_dim();
        double s = 0;
        for (int k = 0; k < E; ++k) s += double(e[k] - e[E + k]) * (e[k] - e[E + k]);
        const double d = safe_distance(s);
        std::printf("distance %.4f  threshold %.4f  %s\n", d, m.model.threshold, d < m.model.threshold ? "same" : "different");
        return 0;
    };
}

}  // namespace siamese::cli
