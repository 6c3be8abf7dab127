// siamese inspect FILE...: one JSON line of header facts and grey-sample statistics per image
// (PGM, PNG or JPEG, as every command reads them).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "siamese/common.hpp"
#include "siamese/jsonio.hpp"
#include "siamese/image_io.hpp"

namespace siamese::cli {

Runner add_inspect(CLI::App& app) {
    auto* sub = app.add_subcommand("inspect", "Print width, height, maxval and grey-sample statistics of images (PGM, PNG, JPEG)");
    auto files = std::make_shared<std::vector<std::string>>();
    sub->add_option("files", *files, "Image files")->required();
    return [files]() {
        int status = 0;
        for (const auto& f : *files) {
            try {
                const PgmImage img = read_image(f);
                double sum = 0;
                unsigned lo = 65535, hi = 0;
                for (uint16_t v : img.samples) {
                    sum += v;
                    lo = std::min<unsigned>(lo, v);
                    hi = std::max<unsigned>(hi, v);
                }
                nlohmann::json j = {{"file", f},      {"width", img.width}, {"height", img.height},
                                    {"maxval", img.maxval}, {"min", lo},        {"max", hi},
                                    {"mean", sum / double(img.samples.size())}};
                std::printf("%s\n", dump_json(j).c_str());
            } catch (const DataError& e) {
                std::fprintf(stderr, "siamese: error: %s\n", e.what());
                status = 1;
            }
        }
        return status;
    };
}

}  // namespace siamese::cli
