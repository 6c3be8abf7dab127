// siamese synth: write the built-in procedurally generated dataset as PGM folders.
#include <cstdio>

#include "commands.hpp"
#include "siamese/synth.hpp"

namespace siamese::cli {

Runner add_synth(CLI::App& app) {
    auto* sub = app.add_subcommand("synth", "Write the built-in synthetic face dataset as PGM folders (sP/I.pgm)");
    auto opt = std::make_shared<SynthOptions>();
    auto out = std::make_shared<std::string>();
    sub->add_option("--out", *out, "Output folder")->required();
    sub->add_option("--people", opt->people, "Number of people")->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--images", opt->images, "Images per person")->capture_default_str()->check(CLI::Range(1, 10000));
    sub->add_option("--seed", opt->seed, "Generator seed")->capture_default_str()
        ->check(seed_validator());
    return [opt, out]() {
        write_synth(*out, *opt);
        std::printf("wrote %d people x %d images (%dx%d) to %s\n", opt->people, opt->images, opt->width, opt->height,
                    out->c_str());
        return 0;
    };
}

}  // namespace siamese::cli
