// Writing small PNG and JPEG files with the same libraries the reader uses, so that the tests
// make their own images (every PNG colour type and depth, interlacing, grey/colour/CMYK and
// progressive JPEG) instead of keeping binary files.
#pragma once
#include <jpeglib.h>
#include <png.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace testutil {

// samples: height rows of width * channels values (0..255, or 0..65535 at depth 16).
// color_type: PNG_COLOR_TYPE_GRAY, _GRAY_ALPHA, _RGB, _RGBA or _PALETTE (samples = indices
// into `palette`, RGB triples).
inline void write_png(const std::string& path, int width, int height, int color_type, int depth,
                      const std::vector<unsigned>& samples, bool interlace = false,
                      const std::vector<unsigned char>& palette = {}) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        std::fclose(f);
        throw std::runtime_error("libpng failed writing " + path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        std::vector<png_color> pal;
        for (size_t i = 0; i + 2 < palette.size(); i += 3) pal.push_back({palette[i], palette[i + 1], palette[i + 2]});
        png_set_PLTE(png, info, pal.data(), int(pal.size()));
    }
    png_write_info(png, info);
    if (depth < 8) png_set_packing(png);
    const int channels = png_get_channels(png, info);
    const int bytes = depth == 16 ? 2 : 1;
    std::vector<unsigned char> buf(size_t(width) * height * channels * bytes);
    for (size_t i = 0; i < samples.size(); ++i) {
        if (bytes == 2) {
            buf[2 * i] = (unsigned char)(samples[i] >> 8);
            buf[2 * i + 1] = (unsigned char)(samples[i] & 0xFF);
        } else {
            buf[i] = (unsigned char)samples[i];
        }
    }
    std::vector<png_bytep> rows(height);
    for (int y = 0; y < height; ++y) rows[y] = buf.data() + size_t(y) * width * channels * bytes;
    png_set_interlace_handling(png);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
}

// components 1 (grey), 3 (RGB, stored as YCbCr) or 4 (CMYK); samples 0..255.
inline void write_jpeg(const std::string& path, int width, int height, int components, const std::vector<unsigned>& samples,
                       bool progressive = false, int quality = 95) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    jpeg_compress_struct c;
    jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = JDIMENSION(width);
    c.image_height = JDIMENSION(height);
    c.input_components = components;
    c.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    std::vector<JSAMPLE> row(size_t(width) * components);
    while (c.next_scanline < c.image_height) {
        for (size_t k = 0; k < row.size(); ++k) row[k] = JSAMPLE(samples[size_t(c.next_scanline) * row.size() + k]);
        JSAMPROW r = row.data();
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    std::fclose(f);
}

}  // namespace testutil
