// siamese enroll: embed people's photos into a gallery (no retraining): a folder of person
// folders, or --person NAME with photo files; --append adds to an existing gallery.
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.hpp"
#include "model_io.hpp"
#include "siamese/common.hpp"
#include "siamese/dataset.hpp"
#include "siamese/gallery.hpp"

namespace siamese::cli {
namespace {

// "1 photo", "2 photos": enrolment often adds one of each.
std::string counted(int n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); }

}  // namespace

Runner add_enroll(CLI::App& app) {
    auto* sub = app.add_subcommand("enroll", "Embed people's photos into a gallery for siamese identify");
    struct Args {
        EngineArgs engine;
        std::string model, data, person, out, fit = "crop";
        std::vector<std::string> photos;
        bool append = false, replace = false;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--model", a->model, "model.safetensors from siamese train")->required();
    sub->add_option("--data", a->data, "Folder with one sub-folder of photos per person (1..N photos each)");
    sub->add_option("--person", a->person, "Enroll the given photo files as this one person");
    sub->add_option("photos", a->photos, "Photo files (with --person)");
    sub->add_option("--out", a->out, "Gallery file (gallery.safetensors)")->required();
    sub->add_flag("--append", a->append, "Add to the existing gallery --out (people, or --person photos)");
    sub->add_flag("--replace", a->replace, "Replace the photos of people already enrolled instead of refusing");
    add_fit_option(sub, a->fit);
    add_engine_options(sub, a->engine);
    return [a]() {
        if (a->data.empty() == a->person.empty()) throw UsageError("enroll needs either --data DIR or --person NAME FILE...");
        if (!a->person.empty() && a->photos.empty()) throw UsageError("--person needs photo files");
        if (a->data.size() && !a->photos.empty()) throw UsageError("photo files go with --person, not --data");
        LoadedModel m = open_model(a->model, a->engine.device, a->engine.threads);
        Gallery g;
        const bool exists = std::filesystem::exists(a->out);
        if (a->append) {
            if (!exists) throw DataError(a->out + ": no gallery to append to (leave out --append to create it)");
            g = load_gallery(a->out);
            check_gallery_fits(g, a->out, m.backend->embed_dim(), m.checksum, a->model);
        } else {
            if (exists) throw DataError(a->out + ": gallery exists (use --append to add to it)");
            g.embed_dim = m.backend->embed_dim();
            g.model_checksum = m.checksum;
        }
        // (person, photo files) to enroll.
        std::vector<std::pair<std::string, std::vector<std::string>>> batch;
        if (!a->data.empty()) {
            Preprocess pp = m.model.pre;
            const ImageBank bank = load_dataset(a->data, pp);  // validates every photo first
            for (size_t p = 0; p < bank.people.size(); ++p) {
                std::vector<std::string> files;
                for (int i : bank.images_of[p]) files.push_back(bank.files[i]);
                batch.push_back({bank.people[p], files});
            }
        } else {
            batch.push_back({a->person, a->photos});
        }
        int added_people = 0, added_photos = 0;
        std::vector<std::string> all_files;  // every person's photos, embedded in one pass (one resize note)
        for (const auto& [name, files] : batch) {
            const bool known = g.find_person(name) >= 0;
            if (known && !a->replace) {
                if (a->data.size()) throw DataError("person '" + name + "' is already enrolled in " + a->out + " (use --replace)");
                for (const auto& f : files)  // --person: new photos of a known person are welcome; the same photo is not
                    for (int i = 0; i < g.size(); ++i)
                        if (g.sources[i] == f && g.people[g.owner[i]] == name)
                            throw DataError(f + ": already enrolled for '" + name + "' (use --replace)");
            }
            if (known && a->replace) g.remove_person(name);
            added_people += !known;
            all_files.insert(all_files.end(), files.begin(), files.end());
        }
        const std::vector<float> emb = embed_files(m, all_files, parse_fit(a->fit));
        for (const auto& [name, files] : batch)
            for (const auto& f : files) {
                g.add(name, emb.data() + size_t(added_photos) * g.embed_dim, f);
                ++added_photos;
            }
        save_gallery(a->out, g);
        std::printf("%s: %s enrolled (%d new %s); the gallery holds %s, %s\n", a->out.c_str(),
                    counted(added_photos, "photo", "photos").c_str(), added_people, added_people == 1 ? "person" : "people",
                    counted(int(g.people.size()), "person", "people").c_str(), counted(g.size(), "photo", "photos").c_str());
        return 0;
    };
}

}  // namespace siamese::cli
