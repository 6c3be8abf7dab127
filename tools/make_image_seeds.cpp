// Writes the PNG and JPEG fuzz seeds (tools/make_fuzz_corpus.sh builds and runs it): one small
// file per colour type, depth and coding the image reader handles, made with the test writers.
#include <string>
#include <vector>

#include "../tests/image_writers.hpp"

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::string png = argv[1], jpg = argv[2];
    const int w = 8, h = 6;
    std::vector<unsigned> g, g16, rgb, rgba, idx;
    for (int i = 0; i < w * h; ++i) {
        g.push_back(unsigned(i * 5));
        g16.push_back(unsigned(i * 1300));
        rgb.insert(rgb.end(), {unsigned(i * 5), unsigned(255 - i * 5), unsigned(i * 3)});
        rgba.insert(rgba.end(), {unsigned(i * 5), unsigned(255 - i * 5), unsigned(i * 3), 200});
        idx.push_back(unsigned(i % 3));
    }
    testutil::write_png(png + "/grey8.png", w, h, PNG_COLOR_TYPE_GRAY, 8, g);
    testutil::write_png(png + "/grey16.png", w, h, PNG_COLOR_TYPE_GRAY, 16, g16);
    testutil::write_png(png + "/rgb.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb);
    testutil::write_png(png + "/rgba.png", w, h, PNG_COLOR_TYPE_RGBA, 8, rgba);
    testutil::write_png(png + "/interlaced.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb, true);
    testutil::write_png(png + "/palette.png", w, h, PNG_COLOR_TYPE_PALETTE, 8, idx, false, {0, 0, 0, 255, 0, 0, 0, 0, 255});
    testutil::write_jpeg(jpg + "/grey.jpg", w, h, 1, g);
    testutil::write_jpeg(jpg + "/colour.jpg", w, h, 3, rgb);
    testutil::write_jpeg(jpg + "/progressive.jpg", w, h, 3, rgb, true);
    return 0;
}
