// PGM parser written defensively: every malformed header or raster is refused with a message
// naming the file; sizes are bounded before any allocation.
#include "siamese/pgm.hpp"
#include "siamese/files.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

#include "siamese/common.hpp"

namespace siamese {

namespace {

struct Cursor {
    const std::string& s;
    const std::string& name;
    size_t pos = 0;

    [[noreturn]] void fail(const std::string& what) const { throw DataError(name + ": " + what); }

    // Skips whitespace and '#' comments (to end of line) between header tokens.
    void skip_space() {
        while (pos < s.size()) {
            if (std::isspace(static_cast<unsigned char>(s[pos]))) {
                ++pos;
            } else if (s[pos] == '#') {
                while (pos < s.size() && s[pos] != '\n' && s[pos] != '\r') ++pos;
            } else {
                break;
            }
        }
    }
    // Reads an unsigned decimal number; `what` names the field. Values above `limit` are refused
    // without overflowing.
    long number(const char* what, long limit) {
        skip_space();
        if (pos >= s.size()) fail(std::string("truncated header: missing ") + what);
        if (s[pos] == '-') fail(std::string("negative ") + what);
        if (!std::isdigit(static_cast<unsigned char>(s[pos])))
            fail(std::string("bad ") + what + ": not a number");
        long v = 0;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
            v = v * 10 + (s[pos] - '0');
            if (v > limit) fail(std::string(what) + " too large (limit " + std::to_string(limit) + ")");
            ++pos;
        }
        if (pos < s.size() && !std::isspace(static_cast<unsigned char>(s[pos])) && s[pos] != '#')
            fail(std::string("bad ") + what + ": not a number");
        return v;
    }
};

}  // namespace

PgmImage parse_pgm(const std::string& bytes, const std::string& name) {
    Cursor c{bytes, name};
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '2'))
        c.fail("not a PGM file (magic must be P5 or P2)");
    const bool binary = bytes[1] == '5';
    c.pos = 2;
    if (c.pos < bytes.size() && !std::isspace(static_cast<unsigned char>(bytes[c.pos])) && bytes[c.pos] != '#')
        c.fail("not a PGM file (magic must be P5 or P2)");
    PgmImage img;
    img.width = static_cast<int>(c.number("width", kPgmMaxSide));
    img.height = static_cast<int>(c.number("height", kPgmMaxSide));
    if (img.width == 0 || img.height == 0) c.fail("zero width or height");
    img.maxval = static_cast<int>(c.number("maxval", 65535));
    if (img.maxval == 0) c.fail("maxval 0 (must be 1..65535)");
    const size_t n = size_t(img.width) * size_t(img.height);  // <= 2^28: no overflow
    if (binary) {
        // Exactly one whitespace byte separates maxval from the raster.
        if (c.pos >= bytes.size()) c.fail("truncated header: no raster after maxval");
        ++c.pos;
        const size_t bps = img.maxval > 255 ? 2 : 1;
        const size_t need = n * bps;
        if (bytes.size() - c.pos < need)
            c.fail("truncated raster: " + std::to_string(bytes.size() - c.pos) + " bytes, expected " +
                   std::to_string(need));
        img.samples.resize(n);
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + c.pos);
        for (size_t i = 0; i < n; ++i) {
            const unsigned v = bps == 1 ? p[i] : (unsigned(p[2 * i]) << 8) | p[2 * i + 1];
            if (v > unsigned(img.maxval))
                c.fail("sample " + std::to_string(i) + " is " + std::to_string(v) + ", over maxval " +
                       std::to_string(img.maxval));
            img.samples[i] = static_cast<uint16_t>(v);
        }
    } else {
        // An ASCII raster has at least two bytes per sample: bound n before allocating.
        if ((bytes.size() - c.pos) / 2 + 1 < n) c.fail("truncated raster: too few samples");
        img.samples.resize(n);
        for (size_t i = 0; i < n; ++i) {
            c.skip_space();
            if (c.pos >= bytes.size())
                c.fail("truncated raster: " + std::to_string(i) + " of " + std::to_string(n) + " samples");
            const long v = c.number("sample", 65535);
            if (v > img.maxval)
                c.fail("sample " + std::to_string(i) + " is " + std::to_string(v) + ", over maxval " +
                       std::to_string(img.maxval));
            img.samples[i] = static_cast<uint16_t>(v);
        }
    }
    return img;
}

PgmImage read_pgm(const std::string& path) { return parse_pgm(read_file_bytes(path), path); }

void write_pgm(const std::string& path, const PgmImage& img) {
    std::ofstream f(path, std::ios::binary);
    if (!f) throw DataError(path + ": cannot create file");
    f << "P5\n" << img.width << " " << img.height << "\n" << img.maxval << "\n";
    std::string raster;
    raster.reserve(img.samples.size() * 2);
    for (uint16_t v : img.samples) {
        if (img.maxval > 255) raster.push_back(char(v >> 8));
        raster.push_back(char(v & 0xFF));
    }
    f.write(raster.data(), std::streamsize(raster.size()));
    if (!f) throw DataError(path + ": write error");
}

}  // namespace siamese
