#include "siamese/image_io.hpp"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "siamese/common.hpp"
#include "siamese/files.hpp"

namespace siamese {

ImageFormat sniff_image_format(const std::string& head) {
    if (head.size() >= 2 && head[0] == 'P' && (head[1] == '5' || head[1] == '2')) return ImageFormat::Pgm;
    if (head.size() >= 8 && std::memcmp(head.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
    if (head.size() >= 3 && std::memcmp(head.data(), "\xff\xd8\xff", 3) == 0) return ImageFormat::Jpeg;
    return ImageFormat::Unknown;
}

namespace {

// What is wrong with a header's size ("" when it is fine): checked before any pixel is allocated.
std::string size_problem(long w, long h, const std::string& name) {
    if (w < 1 || h < 1 || w > kPgmMaxSide || h > kPgmMaxSide)
        return name + ": image size " + std::to_string(w) + "x" + std::to_string(h) + " (sides must be 1.." +
               std::to_string(kPgmMaxSide) + ")";
    if (size_t(w) * size_t(h) > kMaxImagePixels)
        return name + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels is over the " +
               std::to_string(kMaxImagePixels >> 20) + "-megapixel limit";
    return "";
}

// BT.601 luma of one RGB sample triple, rounded (in double: exact for 8 and 16 bits).
uint16_t luma(unsigned r, unsigned g, unsigned b) { return uint16_t(0.299 * r + 0.587 * g + 0.114 * b + 0.5); }

// ---- PNG: libpng's error path is a longjmp back into decode_png, never exit() or a throw
// through C frames.
struct PngSource {
    const std::string* bytes;
    size_t pos;
    char error[256];
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
    if (n > src->bytes->size() - src->pos) png_error(png, "truncated file");
    std::memcpy(out, src->bytes->data() + src->pos, n);
    src->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
    auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
    std::snprintf(src->error, sizeof src->error, "%s", msg);
    png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk trouble: the pixels are fine

}  // namespace

PgmImage decode_png(const std::string& bytes, const std::string& name) {
    PngSource src{&bytes, 0, {0}};
    PgmImage img;
    std::vector<png_bytep> rows;
    std::vector<uint8_t> buf;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) throw DataError(name + ": cannot start the PNG decoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        throw DataError(name + ": cannot start the PNG decoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        throw DataError(name + ": bad PNG (" + src.error + ")");
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, kPgmMaxSide, kPgmMaxSide);  // libpng refuses larger sides itself
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    const int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (const std::string bad = size_problem(long(w), long(h), name); !bad.empty()) {
        png_destroy_read_struct(&png, &info, nullptr);
        throw DataError(bad);
    }
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);  // alpha ignored
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int channels = png_get_channels(png, info), out_depth = png_get_bit_depth(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    buf.resize(rowbytes * h);
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = buf.data() + size_t(y) * rowbytes;
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    img.width = int(w);
    img.height = int(h);
    img.maxval = out_depth == 16 ? 65535 : 255;
    img.samples.resize(size_t(w) * h);
    const int bps = out_depth == 16 ? 2 : 1;
    for (png_uint_32 y = 0; y < h; ++y)
        for (png_uint_32 x = 0; x < w; ++x) {
            const uint8_t* p = rows[y] + size_t(x) * channels * bps;
            auto sample = [&](int c) { return bps == 2 ? unsigned(p[2 * c]) << 8 | p[2 * c + 1] : unsigned(p[c]); };
            img.samples[size_t(y) * w + x] = channels >= 3 ? luma(sample(0), sample(1), sample(2)) : uint16_t(sample(0));
        }
    return img;
}

namespace {

// ---- JPEG: errors AND warnings (corrupt data, a premature end) longjmp back; the decoder
// would otherwise fill a truncated file with grey and carry on.
struct JpegErr {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};
void jpeg_on_error(j_common_ptr c) {
    auto* e = reinterpret_cast<JpegErr*>(c->err);
    c->err->format_message(c, e->message);
    std::longjmp(e->jump, 1);
}
void jpeg_on_message(j_common_ptr c, int level) {
    if (level < 0) jpeg_on_error(c);  // a warning: refuse the file
}
// Progressive files may hold thousands of scans (a decoding-time bomb): at most 500.
void jpeg_on_progress(j_common_ptr c) {
    auto* d = reinterpret_cast<j_decompress_ptr>(c);
    if (d->is_decompressor && d->input_scan_number > 500) {
        auto* e = reinterpret_cast<JpegErr*>(c->err);
        std::snprintf(e->message, sizeof e->message, "more than 500 progressive scans");
        std::longjmp(e->jump, 1);
    }
}

}  // namespace

PgmImage decode_jpeg(const std::string& bytes, const std::string& name) {
    jpeg_decompress_struct cinfo;
    JpegErr err;
    jpeg_progress_mgr progress;
    PgmImage img;
    std::vector<JSAMPLE> row;  // every C++ object before setjmp: a longjmp must skip no destructor
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    err.message[0] = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        throw DataError(name + ": bad JPEG (" + std::string(err.message) + ")");
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = jpeg_on_progress;
    cinfo.progress = &progress;
    cinfo.mem->max_memory_to_use = 1024L << 20;
    jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), (unsigned long)bytes.size());
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        throw DataError(name + ": CMYK JPEG images are not supported (save it as RGB or grey)");
    }
    if (const std::string bad = size_problem(long(cinfo.image_width), long(cinfo.image_height), name); !bad.empty()) {
        jpeg_destroy_decompress(&cinfo);
        throw DataError(bad);
    }
    cinfo.out_color_space = JCS_GRAYSCALE;  // libjpeg's Y: the BT.601 luma
    jpeg_start_decompress(&cinfo);
    img.width = int(cinfo.output_width);
    img.height = int(cinfo.output_height);
    img.maxval = 255;
    img.samples.resize(size_t(img.width) * img.height);
    row.resize(size_t(img.width) * cinfo.output_components);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW r = row.data();
        const JDIMENSION y = cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &r, 1);
        for (int x = 0; x < img.width; ++x) img.samples[size_t(y) * img.width + x] = row[x];
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return img;
}

PgmImage decode_image(const std::string& bytes, const std::string& name) {
    switch (sniff_image_format(bytes.substr(0, 8))) {
        case ImageFormat::Pgm: return parse_pgm(bytes, name);
        case ImageFormat::Png: return decode_png(bytes, name);
        case ImageFormat::Jpeg: return decode_jpeg(bytes, name);
        default: break;
    }
    throw DataError(name + ": not a PGM, PNG or JPEG image (unknown first bytes)");
}

PgmImage read_image(const std::string& path) {
    regular_file_size(path);  // before opening: a FIFO must not block
    std::string head(8, '\0');
    {
        std::ifstream f(path, std::ios::binary);
        if (!f) throw DataError(path + ": cannot open");
        f.read(head.data(), std::streamsize(head.size()));
        head.resize(size_t(f.gcount()));
    }
    if (sniff_image_format(head) == ImageFormat::Pgm) return read_pgm(path);
    return decode_image(read_file_bytes(path, kMaxImageFileBytes), path);
}

bool has_image_extension(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    for (auto& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return ext == ".pgm" || ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

namespace {

// Resamples n_in samples (stride `step` in src) to n_out: area averaging (box weights with
// fractional coverage) when shrinking, bilinear (centres aligned, edges clamped) when growing.
struct Tap {
    int index;
    double weight;
};
std::vector<std::vector<Tap>> resample_taps(int n_in, int n_out) {
    std::vector<std::vector<Tap>> taps(n_out);
    const double scale = double(n_in) / n_out;
    for (int o = 0; o < n_out; ++o) {
        if (scale >= 1.0) {
            const double a = o * scale, b = (o + 1) * scale;
            for (int i = int(a); i < n_in && i < b; ++i) {
                const double cover = std::min(b, double(i + 1)) - std::max(a, double(i));
                if (cover > 0) taps[o].push_back({i, cover / scale});
            }
        } else {
            double x = (o + 0.5) * scale - 0.5;
            x = std::max(0.0, std::min(double(n_in - 1), x));
            const int i0 = int(x), i1 = std::min(i0 + 1, n_in - 1);
            const double f = x - i0;
            taps[o].push_back({i0, 1.0 - f});
            if (f > 0) taps[o].push_back({i1, f});
        }
    }
    return taps;
}

}  // namespace

PgmImage fit_image(const PgmImage& img, int width, int height, Fit fit) {
    if (width < 1 || height < 1) throw UsageError("fit_image: target size must be positive");
    if (img.width == width && img.height == height) return img;
    // The source window: all of it, or the largest centred one of the target's aspect.
    int x0 = 0, y0 = 0, cw = img.width, ch = img.height;
    if (fit == Fit::Crop) {
        if (double(img.width) * height > double(img.height) * width) {  // too wide
            cw = std::max(1, int(std::lround(double(img.height) * width / height)));
            x0 = (img.width - cw) / 2;
        } else {
            ch = std::max(1, int(std::lround(double(img.width) * height / width)));
            y0 = (img.height - ch) / 2;
        }
    }
    const auto tx = resample_taps(cw, width), ty = resample_taps(ch, height);
    std::vector<double> mid(size_t(ch) * width);  // rows resampled first
    for (int y = 0; y < ch; ++y)
        for (int x = 0; x < width; ++x) {
            double s = 0;
            for (const Tap& t : tx[x]) s += t.weight * img.samples[size_t(y0 + y) * img.width + x0 + t.index];
            mid[size_t(y) * width + x] = s;
        }
    PgmImage out;
    out.width = width;
    out.height = height;
    out.maxval = img.maxval;
    out.samples.resize(size_t(width) * height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double s = 0;
            for (const Tap& t : ty[y]) s += t.weight * mid[size_t(t.index) * width + x];
            out.samples[size_t(y) * width + x] = uint16_t(std::min(double(img.maxval), std::max(0.0, s + 0.5)));
        }
    return out;
}

}  // namespace siamese
