// The built-in dataset: procedurally drawn ORL-shaped faces (default 40 people x 10 images,
// 112 x 92, 8-bit), generated from a seed so a newcomer can train with nothing downloaded.
// Identity = face shape, eye/nose/mouth geometry, hair, skin tone, glasses; every image adds
// shift, rotation, scale, lighting, expression, eye closure and sensor noise.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "siamese/dataset.hpp"
#include "siamese/pgm.hpp"

namespace siamese {

struct SynthOptions {
    int people = 40, images = 10;
    int height = 112, width = 92;
    uint64_t seed = 1;
};

// faces[p][i] is image i of person p.
std::vector<std::vector<PgmImage>> synth_faces(const SynthOptions& opt);
// The same faces as an image bank (people named s1..sN, files "synthetic:sP/I.pgm").
ImageBank synth_bank(const SynthOptions& opt, const Preprocess& pp);
// Writes DIR/sP/I.pgm (1-based, like ORL).
void write_synth(const std::string& dir, const SynthOptions& opt);

}  // namespace siamese
