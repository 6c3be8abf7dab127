// A gallery: embeddings of enrolled people's photos, so that a new photo is identified by its
// nearest person (or "unknown" beyond the decision threshold) with no retraining.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

struct Gallery {
    int embed_dim = 0;
    std::string model_checksum;          // of the model that made the embeddings
    std::vector<std::string> people;     // names
    std::vector<float> embeddings;       // (n, embed_dim)
    std::vector<int> owner;              // person index of each embedding
    std::vector<std::string> sources;    // photo file of each embedding

    int size() const { return int(owner.size()); }
    int find_person(const std::string& name) const;  // -1 when absent
    // Adds one photo's embedding to `name` (a new person when absent).
    void add(const std::string& name, const float* embedding, const std::string& source);
    // Removes every embedding of `name` (the person stays, with none, until re-added).
    void remove_person(const std::string& name);
};

void save_gallery(const std::string& path, const Gallery& g);  // safetensors, atomic
Gallery load_gallery(const std::string& path);                 // throws DataError
Gallery parse_gallery(const std::string& bytes, const std::string& name);  // the same, from memory
// Refuses (DataError naming the file) a gallery that is not usable with a model whose
// embeddings are embed_dim wide and whose checksum is model_checksum: whatever the metadata
// claims, the embeddings' width is checked against the model's.
void check_gallery_fits(const Gallery& g, const std::string& path, int embed_dim, const std::string& model_checksum,
                        const std::string& model_path);

struct PersonMatch {
    int person;
    float distance;
};
// Every person with at least one embedding, nearest first: distance to the person's nearest
// embedding, or with `mean` to the mean of the person's embeddings.
std::vector<PersonMatch> rank_people(const Gallery& g, const float* probe, bool mean);

// Open-set identification figures for probes of enrolled people (known) and of strangers.
struct IdentifyReport {
    int known_probes = 0, stranger_probes = 0, gallery_people = 0;
    int draws = 1;                            // gallery draws the figures are the mean of
    double rank1 = 0, rank5 = 0;              // closed set: correct person at rank 1 / within 5
    double dir_far1 = 0, dir_far10 = 0;       // detection-and-identification rate at FAR 1% / 10%
    double threshold_far1 = 0, threshold_far10 = 0;
};

// known[i]: rankings of known probe i and its true person; stranger_best: each stranger probe's
// nearest distance. The threshold for a FAR f accepts at most floor(f * strangers) strangers.
IdentifyReport identification_figures(const std::vector<std::vector<PersonMatch>>& known_rankings,
                                      const std::vector<int>& known_truth, const std::vector<float>& stranger_best);

// Identification on an image bank from its embeddings (n_images, E): per draw, `per_person`
// random photos of each gallery person are enrolled; every other photo of `probe_people` is a
// probe (people not in the gallery are strangers). Figures are the mean over `draws` draws.
struct ImageBank;
IdentifyReport identify_on_bank(const std::vector<float>& emb, int E, const ImageBank& bank,
                                const std::vector<int>& gallery_people, const std::vector<int>& probe_people,
                                int per_person, int draws, uint64_t seed, bool mean);

// Identification figures as JSON (summary.json, `eval --identify --json`) and as printed lines.
nlohmann::json identify_to_json(const IdentifyReport& r);
void print_identify(const IdentifyReport& r);

}  // namespace siamese
