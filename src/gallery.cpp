#include "siamese/gallery.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "siamese/files.hpp"
#include "siamese/jsonio.hpp"
#include "siamese/safetensors.hpp"
#include "siamese/common.hpp"
#include "siamese/dataset.hpp"
#include "siamese/rules.hpp"

namespace siamese {

int Gallery::find_person(const std::string& name) const {
    const auto it = std::find(people.begin(), people.end(), name);
    return it == people.end() ? -1 : int(it - people.begin());
}

void Gallery::add(const std::string& name, const float* embedding, const std::string& source) {
    int p = find_person(name);
    if (p < 0) {
        p = int(people.size());
        people.push_back(name);
    }
    embeddings.insert(embeddings.end(), embedding, embedding + embed_dim);
    owner.push_back(p);
    sources.push_back(source);
}

void Gallery::remove_person(const std::string& name) {
    const int p = find_person(name);
    if (p < 0) return;
    Gallery kept = *this;
    kept.embeddings.clear();
    kept.owner.clear();
    kept.sources.clear();
    for (int i = 0; i < size(); ++i)
        if (owner[i] != p) {
            kept.embeddings.insert(kept.embeddings.end(), embeddings.begin() + long(i) * embed_dim,
                                   embeddings.begin() + long(i + 1) * embed_dim);
            kept.owner.push_back(owner[i]);
            kept.sources.push_back(sources[i]);
        }
    *this = std::move(kept);
}

void save_gallery(const std::string& path, const Gallery& g) {
    SafeTensor t{{int64_t(g.size()), int64_t(g.embed_dim)}, g.embeddings};
    const std::map<std::string, std::string> meta = {{"format", "siamese-gallery-v1"},
                                                     {"model_checksum", g.model_checksum},
                                                     {"people", strings_to_json(g.people).dump()},
                                                     {"owner", nlohmann::json(g.owner).dump()},
                                                     {"sources", strings_to_json(g.sources).dump()}};
    write_safetensors(path, {{"embeddings", t}}, meta);
}

Gallery load_gallery(const std::string& path) { return parse_gallery(read_file_bytes(path), path); }

Gallery parse_gallery(const std::string& bytes, const std::string& path) {
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> meta;
    parse_safetensors(bytes, path, tensors, meta);
    if (meta["format"] != "siamese-gallery-v1") throw DataError(path + ": not a siamese gallery");
    Gallery g;
    try {
        g.model_checksum = meta.at("model_checksum");
        g.people = strings_from_json(nlohmann::json::parse(meta.at("people")));
        // Each owner an integer that an int holds: nlohmann's get<int> of a float such as 6e41
        // is undefined behaviour (the fuzzer found one), so every element is checked first.
        const nlohmann::json owners = nlohmann::json::parse(meta.at("owner"));
        if (!owners.is_array()) throw DataError("owner is not a list");
        for (const auto& o : owners) {
            if (!o.is_number_integer()) throw DataError("an owner is not a whole number");
            const int64_t v = o.get<int64_t>();
            if (v < 0 || v > int64_t(1) << 30) throw DataError("an owner is out of range");
            g.owner.push_back(int(v));
        }
        g.sources = strings_from_json(nlohmann::json::parse(meta.at("sources")));
    } catch (const std::exception& e) {
        throw DataError(path + ": bad gallery metadata (" + e.what() + ")");
    }
    auto it = tensors.find("embeddings");
    if (it == tensors.end() || it->second.shape.size() != 2) throw DataError(path + ": no (n, E) embeddings tensor");
    g.embed_dim = int(it->second.shape[1]);
    g.embeddings = it->second.data;
    if (int64_t(g.owner.size()) != it->second.shape[0] || g.sources.size() != g.owner.size())
        throw DataError(path + ": embeddings and their owners disagree");
    for (int o : g.owner)
        if (o < 0 || o >= int(g.people.size())) throw DataError(path + ": embedding owner out of range");
    return g;
}

void check_gallery_fits(const Gallery& g, const std::string& path, int embed_dim, const std::string& model_checksum,
                        const std::string& model_path) {
    if (g.model_checksum != model_checksum)
        throw DataError(path + ": enrolled with another model than " + model_path + " (enroll into a new gallery)");
    if (g.embed_dim != embed_dim)
        throw DataError(path + ": its embeddings are " + std::to_string(g.embed_dim) + " wide, the model's " +
                        std::to_string(embed_dim) + " (a gallery of another model)");
    if (g.embeddings.size() != size_t(g.size()) * size_t(g.embed_dim))
        throw DataError(path + ": embeddings and their owners disagree");
}

std::vector<PersonMatch> rank_people(const Gallery& g, const float* probe, bool mean) {
    const int P = int(g.people.size()), E = g.embed_dim;
    std::vector<double> best(P, std::numeric_limits<double>::infinity());
    std::vector<std::vector<double>> sum(mean ? P : 0, std::vector<double>(E, 0.0));
    std::vector<int> count(P, 0);
    for (int i = 0; i < g.size(); ++i) {
        const float* e = g.embeddings.data() + size_t(i) * E;
        const int p = g.owner[i];
        ++count[p];
        if (mean) {
            for (int k = 0; k < E; ++k) sum[p][k] += e[k];
        } else {
            double s = 0;
            for (int k = 0; k < E; ++k) s += double(probe[k] - e[k]) * double(probe[k] - e[k]);
            best[p] = std::min(best[p], s);
        }
    }
    std::vector<PersonMatch> out;
    for (int p = 0; p < P; ++p) {
        if (!count[p]) continue;
        double s = best[p];
        if (mean) {
            s = 0;
            for (int k = 0; k < E; ++k) {
                const double m = sum[p][k] / count[p];
                s += (probe[k] - m) * (probe[k] - m);
            }
        }
        out.push_back({p, float(safe_distance(s))});
    }
    std::stable_sort(out.begin(), out.end(), [](const PersonMatch& a, const PersonMatch& b) { return a.distance < b.distance; });
    return out;
}

IdentifyReport identification_figures(const std::vector<std::vector<PersonMatch>>& known, const std::vector<int>& truth,
                                      const std::vector<float>& stranger_best) {
    IdentifyReport r;
    r.known_probes = int(known.size());
    r.stranger_probes = int(stranger_best.size());
    long top1 = 0, top5 = 0;
    for (size_t i = 0; i < known.size(); ++i) {
        for (size_t k = 0; k < known[i].size() && k < 5; ++k)
            if (known[i][k].person == truth[i]) {
                top1 += k == 0;
                ++top5;
                break;
            }
    }
    if (!known.empty()) {
        r.rank1 = double(top1) / known.size();
        r.rank5 = double(top5) / known.size();
    }
    // Threshold for a false-alarm rate f: accept (d < t) at most floor(f * n) strangers.
    std::vector<float> s = stranger_best;
    std::sort(s.begin(), s.end());
    auto threshold_for = [&](double far) {
        if (s.empty()) return std::numeric_limits<double>::infinity();
        const size_t allowed = size_t(std::floor(far * double(s.size()) + 1e-9));
        return allowed >= s.size() ? double(s.back()) + 1e-6 : double(s[allowed]);  // d < s[allowed]
    };
    auto dir_at = [&](double t) {
        long hits = 0;
        for (size_t i = 0; i < known.size(); ++i)
            hits += !known[i].empty() && known[i][0].person == truth[i] && known[i][0].distance < t;
        return known.empty() ? 0.0 : double(hits) / known.size();
    };
    r.threshold_far1 = threshold_for(0.01);
    r.threshold_far10 = threshold_for(0.10);
    r.dir_far1 = dir_at(r.threshold_far1);
    r.dir_far10 = dir_at(r.threshold_far10);
    return r;
}

IdentifyReport identify_on_bank(const std::vector<float>& emb, int E, const ImageBank& bank,
                                const std::vector<int>& gallery_people, const std::vector<int>& probe_people,
                                int per_person, int draws, uint64_t seed, bool mean) {
    Rng r(seed ^ 0x5851F42D4C957F2Dull);
    IdentifyReport sum;
    for (int t = 0; t < draws; ++t) {
        Gallery g;
        g.embed_dim = E;
        std::vector<char> enrolled(bank.size(), 0);
        for (int p : gallery_people) {
            std::vector<int> imgs = bank.images_of[p];
            r.shuffle(imgs);
            for (int k = 0; k < per_person && k < int(imgs.size()); ++k) {
                g.add(bank.people[p], emb.data() + size_t(imgs[k]) * E, bank.files[imgs[k]]);
                enrolled[imgs[k]] = 1;
            }
        }
        std::vector<std::vector<PersonMatch>> known;
        std::vector<int> truth;
        std::vector<float> strangers;
        for (int p : probe_people) {
            const int gp = g.find_person(bank.people[p]);
            for (int img : bank.images_of[p]) {
                if (enrolled[img]) continue;
                auto ranking = rank_people(g, emb.data() + size_t(img) * E, mean);
                if (gp >= 0) {
                    known.push_back(std::move(ranking));
                    truth.push_back(gp);
                } else if (!ranking.empty()) {
                    strangers.push_back(ranking[0].distance);
                }
            }
        }
        const IdentifyReport d = identification_figures(known, truth, strangers);
        sum.known_probes = d.known_probes;
        sum.stranger_probes = d.stranger_probes;
        sum.rank1 += d.rank1;
        sum.rank5 += d.rank5;
        sum.dir_far1 += d.dir_far1;
        sum.dir_far10 += d.dir_far10;
        sum.threshold_far1 += d.threshold_far1;
        sum.threshold_far10 += d.threshold_far10;
    }
    for (double* v : {&sum.rank1, &sum.rank5, &sum.dir_far1, &sum.dir_far10, &sum.threshold_far1, &sum.threshold_far10})
        *v /= draws;
    sum.gallery_people = int(gallery_people.size());
    sum.draws = draws;
    return sum;
}

nlohmann::json identify_to_json(const IdentifyReport& r) {
    return {{"gallery_people", r.gallery_people}, {"known_probes", r.known_probes}, {"stranger_probes", r.stranger_probes},
            {"rank1", r.rank1}, {"rank5", r.rank5}, {"dir_at_far_1pct", r.dir_far1}, {"dir_at_far_10pct", r.dir_far10},
            {"threshold_far_1pct", r.threshold_far1}, {"threshold_far_10pct", r.threshold_far10}};
}

void print_identify(const IdentifyReport& r) {
    std::printf("identification: %d enrolled people, %d probes of them, %d stranger probes (mean of %d draws)\n",
                r.gallery_people, r.known_probes, r.stranger_probes, r.draws);
    std::printf("  closed set rank-1 %.4f  rank-5 %.4f\n", r.rank1, r.rank5);
    std::printf("  open set detection-and-identification rate: %.4f at 1%% false alarms, %.4f at 10%%\n", r.dir_far1,
                r.dir_far10);
    // The model's own threshold is chosen for verification accuracy and lets more strangers in.
    std::printf("  thresholds for identify --threshold: %.4f (1%% false alarms), %.4f (10%%)\n", r.threshold_far1,
                r.threshold_far10);
}

}  // namespace siamese
