// siamese verify: distance between two photos and the verdict at the model's threshold.
#include <cmath>
#include <cstdio>

#include "commands.hpp"
#include "siamese/checkpoint.hpp"
#include "siamese/common.hpp"

namespace siamese::cli {

Runner add_verify(CLI::App& app) {
    auto* sub = app.add_subcommand("verify", "Tell whether two PGM photos show the same person");
    struct Args {
        std::string model, a, b, device = "cpu";
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("first", a->a, "First photo (PGM)")->required();
    sub->add_option("second", a->b, "Second photo (PGM)")->required();
    sub->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str()
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    return [a]() {
        const Model m = load_model(a->model);
        std::vector<float> images;
        for (const auto& path : {a->a, a->b}) {
            int h, w;
            const std::vector<float> img = preprocess(read_pgm(path), m.pre, &h, &w);
            if (h != m.net.in_h || w != m.net.in_w)
                throw DataError(path + ": image preprocesses to " + std::to_string(w) + "x" + std::to_string(h) +
                                " but the model takes " + std::to_string(m.net.in_w) + "x" + std::to_string(m.net.in_h));
            images.insert(images.end(), img.begin(), img.end());
        }
        TrainHyper h;
        h.net = m.net;
        auto backend = make_backend(a->device, h, 1);
        backend->set_params(m.params);
        const std::vector<float> e = backend->embed(images.data(), 2);
        const int E = backend->embed_dim();
        double s = 0;
        for (int k = 0; k < E; ++k) s += double(e[k] - e[E + k]) * (e[k] - e[E + k]);
        const double d = std::sqrt(std::max(s, 1e-7));
        std::printf("distance %.4f  threshold %.4f  %s\n", d, m.threshold, d < m.threshold ? "same" : "different");
        return 0;
    };
}

}  // namespace siamese::cli
