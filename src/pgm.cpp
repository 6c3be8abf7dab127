// PGM parser written defensively: every malformed header or raster is refused with a message
// naming the file; sizes are bounded before any allocation.
#include "siamese/pgm.hpp"
#include "siamese/files.hpp"

#include <algorithm>
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
        const size_t bps = img.maxval > 255 ? 2 : 1;
        const size_t need = n * bps;
        // One whitespace byte separates maxval from the raster; a comment may come before it
        // ("255#c\n": the newline ends the header, no comment byte reaches the pixels), and a
        // CRLF is taken as one line end when the raster then fits exactly.
        if (c.pos < bytes.size() && bytes[c.pos] == '#')
            while (c.pos < bytes.size() && bytes[c.pos] != '\n' && bytes[c.pos] != '\r') ++c.pos;
        if (c.pos >= bytes.size()) c.fail("truncated header: no raster after maxval");
        if (bytes[c.pos] == '\r' && c.pos + 1 < bytes.size() && bytes[c.pos + 1] == '\n' && bytes.size() - c.pos - 2 == need)
            ++c.pos;
        ++c.pos;
        if (bytes.size() - c.pos < need)
            c.fail("truncated raster: " + std::to_string(bytes.size() - c.pos) + " bytes, expected " +
                   std::to_string(need));
        if (bytes.size() - c.pos - need > kPgmTrailingBytes)
            c.fail(std::to_string(bytes.size() - c.pos - need) + " bytes after the raster (at most " +
                   std::to_string(kPgmTrailingBytes) + " allowed): not one image");
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

size_t pgm_max_file_bytes(const std::string& head) {
    // The largest file the header allows: header + raster (P5: 1 or 2 bytes a sample; P2: at
    // most 6 characters a sample) + the trailing tolerance. Anything unparsable: a small bound,
    // parse_pgm then names the fault.
    const std::string name;
    Cursor c{head, name};
    try {
        if (head.size() < 2 || head[0] != 'P' || (head[1] != '5' && head[1] != '2')) return head.size();
        const bool binary = head[1] == '5';
        c.pos = 2;
        const size_t w = size_t(c.number("width", kPgmMaxSide)), h = size_t(c.number("height", kPgmMaxSide));
        const size_t maxval = size_t(c.number("maxval", 65535));
        const size_t per = binary ? (maxval > 255 ? 2 : 1) : 6;
        return c.pos + 2 + w * h * per + kPgmTrailingBytes + (binary ? 0 : 2);
    } catch (const DataError&) {
        return head.size();
    }
}

PgmImage read_pgm(const std::string& path) {
    // Read only what the header implies: a 1 GB file behind a 16x16 header is refused unread.
    regular_file_size(path);  // before opening: a FIFO named x.pgm must not block
    std::string head;
    {
        std::ifstream f(path, std::ios::binary);
        if (f) {
            head.resize(4096);
            f.read(head.data(), std::streamsize(head.size()));
            head.resize(size_t(f.gcount()));
        }
    }
    return parse_pgm(read_file_bytes(path, std::max<size_t>(pgm_max_file_bytes(head), head.size())), path);
}

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
