#include "siamese/synth.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "siamese/common.hpp"

namespace siamese {

namespace {

struct Identity {
    double face_rx, face_ry, skin, background, hair_dark, hairline, hair_width;
    double eye_y, eye_sep, eye_r, brow_tilt, nose_len, nose_w, mouth_y, mouth_w, lip_dark;
    bool glasses, beard;
};

struct Pose {
    double dx, dy, angle, scale, light_u, light_v, light_gain, smile, eye_open, noise;
};

double lerp(double a, double b, double t) { return a + (b - a) * t; }

Identity draw_identity(Rng& r) {
    Identity id;
    id.face_rx = lerp(0.52, 0.72, r.uniform());
    id.face_ry = lerp(0.70, 0.86, r.uniform());
    id.skin = lerp(0.45, 0.85, r.uniform());
    id.background = lerp(0.15, 0.45, r.uniform());
    id.hair_dark = lerp(0.05, 0.6, r.uniform());
    id.hairline = lerp(0.35, 0.75, r.uniform());
    id.hair_width = lerp(1.0, 1.25, r.uniform());
    id.eye_y = lerp(-0.22, -0.05, r.uniform());
    id.eye_sep = lerp(0.18, 0.34, r.uniform());
    id.eye_r = lerp(0.05, 0.095, r.uniform());
    id.brow_tilt = lerp(-0.08, 0.08, r.uniform());
    id.nose_len = lerp(0.2, 0.38, r.uniform());
    id.nose_w = lerp(0.06, 0.14, r.uniform());
    id.mouth_y = lerp(0.32, 0.52, r.uniform());
    id.mouth_w = lerp(0.15, 0.32, r.uniform());
    id.lip_dark = lerp(0.1, 0.35, r.uniform());
    id.glasses = r.uniform() < 0.25;
    id.beard = r.uniform() < 0.2;
    return id;
}

Pose draw_pose(Rng& r) {
    Pose p;
    p.dx = lerp(-0.10, 0.10, r.uniform());
    p.dy = lerp(-0.08, 0.08, r.uniform());
    p.angle = lerp(-0.15, 0.15, r.uniform());
    p.scale = lerp(0.92, 1.08, r.uniform());
    p.light_u = lerp(-0.25, 0.25, r.uniform());
    p.light_v = lerp(-0.12, 0.12, r.uniform());
    p.light_gain = lerp(0.8, 1.15, r.uniform());
    p.smile = lerp(-0.06, 0.1, r.uniform());
    p.eye_open = r.uniform() < 0.15 ? 0.3 : 1.0;
    p.noise = lerp(0.02, 0.05, r.uniform());
    return p;
}

double sq(double x) { return x * x; }
// Smooth inside-ness of an ellipse: 1 inside, 0 outside, soft over ~1 pixel.
double ellipse(double u, double v, double cu, double cv, double ru, double rv) {
    const double d = std::sqrt(sq((u - cu) / ru) + sq((v - cv) / rv));
    return std::clamp((1.0 - d) * 12.0 + 0.5, 0.0, 1.0);
}

PgmImage render(const Identity& id, const Pose& p, int H, int W, Rng& noise_rng) {
    PgmImage img;
    img.width = W;
    img.height = H;
    img.maxval = 255;
    img.samples.resize(size_t(H) * W);
    const double ca = std::cos(p.angle), sa = std::sin(p.angle);
    for (int y = 0; y < H; ++y) {
        for (int x = 0; x < W; ++x) {
            // Pixel -> face coordinates: u,v in about [-1,1], the face centred, pose undone.
            const double px = (x + 0.5) / W * 2.0 - 1.0 - p.dx;
            const double py = ((y + 0.5) / H * 2.0 - 1.0) * (double(H) / W) * 0.85 - p.dy;
            const double u = (ca * px + sa * py) / p.scale;
            const double v = (-sa * px + ca * py) / p.scale;
            double val = id.background + 0.1 * v;
            const double head = ellipse(u, v, 0, 0.05, id.face_rx, id.face_ry);
            const double hair = ellipse(u, v, 0, -0.05, id.face_rx * id.hair_width, id.face_ry * 1.08) *
                                std::clamp((-v - id.hairline * id.face_ry + 0.6) * 6.0, 0.0, 1.0);
            double face = id.skin * (1.0 - 0.25 * sq(u / id.face_rx));  // shading toward the cheeks
            for (int side = -1; side <= 1; side += 2) {
                const double eu = side * id.eye_sep;
                const double white = ellipse(u, v, eu, id.eye_y, id.eye_r * 1.6, id.eye_r * p.eye_open);
                const double pupil = ellipse(u, v, eu, id.eye_y, id.eye_r * 0.7, id.eye_r * 0.7 * p.eye_open);
                face = lerp(face, 0.9, 0.5 * white);
                face = lerp(face, 0.08, pupil);
                const double brow_v = id.eye_y - id.eye_r * 2.2 + side * id.brow_tilt * (u - eu);
                face = lerp(face, id.hair_dark, 0.8 * ellipse(u, v, eu, brow_v, id.eye_r * 2.0, 0.025));
                if (id.glasses) {
                    const double ring = ellipse(u, v, eu, id.eye_y, id.eye_r * 2.6, id.eye_r * 2.2) -
                                        ellipse(u, v, eu, id.eye_y, id.eye_r * 2.3, id.eye_r * 1.9);
                    face = lerp(face, 0.05, std::clamp(ring, 0.0, 1.0));
                }
            }
            const double nose_t = std::clamp((v - id.eye_y) / id.nose_len, 0.0, 1.0);
            face = lerp(face, face * 0.7, ellipse(u, v, 0, id.eye_y + id.nose_len * 0.6, id.nose_w * (0.5 + nose_t),
                                                  id.nose_len * 0.5));
            face = lerp(face, face * 0.5, ellipse(u, v, 0, id.eye_y + id.nose_len, id.nose_w * 1.2, 0.035));
            const double mv = id.mouth_y - p.smile * (1.0 - sq(u / id.mouth_w));
            face = lerp(face, id.lip_dark, ellipse(u, v, 0, mv, id.mouth_w, 0.035));
            if (id.beard) face = lerp(face, id.hair_dark, 0.7 * ellipse(u, v, 0, id.mouth_y + 0.15, id.face_rx * 0.8, 0.3));
            val = lerp(val, face, head);
            val = lerp(val, id.hair_dark, hair);
            val = val * p.light_gain * (1.0 + p.light_u * u + p.light_v * v);
            // Box-Muller noise.
            const double n1 = std::max(noise_rng.uniform(), 1e-12), n2 = noise_rng.uniform();
            val += p.noise * std::sqrt(-2.0 * std::log(n1)) * std::cos(6.283185307179586 * n2);
            img.samples[size_t(y) * W + x] = uint16_t(std::lround(std::clamp(val, 0.0, 1.0) * 255.0));
        }
    }
    return img;
}

}  // namespace

std::vector<std::vector<PgmImage>> synth_faces(const SynthOptions& opt) {
    if (opt.people < 1 || opt.images < 1) throw UsageError("synth: --people and --images must be >= 1");
    if (opt.height < 8 || opt.width < 8 || opt.height > 4096 || opt.width > 4096)
        throw UsageError("synth: image sides must be 8..4096");
    Rng r(opt.seed);
    std::vector<std::vector<PgmImage>> faces(opt.people);
    for (int p = 0; p < opt.people; ++p) {
        const Identity id = draw_identity(r);
        for (int i = 0; i < opt.images; ++i) {
            const Pose pose = draw_pose(r);
            faces[p].push_back(render(id, pose, opt.height, opt.width, r));
        }
    }
    return faces;
}

ImageBank synth_bank(const SynthOptions& opt, const Preprocess& pp) {
    ImageBank bank;
    const auto faces = synth_faces(opt);
    for (int p = 0; p < opt.people; ++p) {
        bank.people.push_back("s" + std::to_string(p + 1));
        for (int i = 0; i < opt.images; ++i)
            bank.add(faces[p][i], p, "synthetic:s" + std::to_string(p + 1) + "/" + std::to_string(i + 1) + ".pgm", pp);
    }
    return bank;
}

void write_synth(const std::string& dir, const SynthOptions& opt) {
    namespace fs = std::filesystem;
    const auto faces = synth_faces(opt);
    for (int p = 0; p < opt.people; ++p) {
        const fs::path pdir = fs::path(dir) / ("s" + std::to_string(p + 1));
        std::error_code ec;
        fs::create_directories(pdir, ec);
        if (ec) throw DataError(pdir.string() + ": cannot create folder (" + ec.message() + ")");
        for (int i = 0; i < opt.images; ++i)
            write_pgm((pdir / (std::to_string(i + 1) + ".pgm")).string(), faces[p][i]);
    }
}

}  // namespace siamese
