// One image reader for every command: PGM (the hardened loader of pgm.hpp), PNG (libpng) and
// JPEG (libjpeg-turbo), recognised by their content, decoded into the PGM loader's grey
// representation (8-bit samples, maxval 255; 16-bit PNGs keep 16 bits, maxval 65535). Colour
// becomes grey by the ITU-R BT.601 luma weights (0.299 R + 0.587 G + 0.114 B; libjpeg's own
// YCbCr -> grey is the same Y); alpha is ignored. Sides over kPgmMaxSide or more than
// kMaxImagePixels decoded pixels are refused before anything is allocated; corrupt or truncated
// files (libjpeg's warnings included) are refused with DataError naming the file and the fault.
// And resizing any photo to a model's input: a centre crop to the target's aspect (or a
// stretch), then area averaging when shrinking, bilinear when enlarging.
#pragma once
#include <string>

#include "siamese/pgm.hpp"

namespace siamese {

enum class ImageFormat { Pgm, Png, Jpeg, Unknown };
constexpr size_t kMaxImagePixels = size_t(64) << 20;    // 64 megapixels decoded
constexpr size_t kMaxImageFileBytes = size_t(256) << 20;  // compressed file size

// By the first bytes: "P2"/"P5", the PNG signature, the JPEG SOI marker.
ImageFormat sniff_image_format(const std::string& head);
PgmImage decode_png(const std::string& bytes, const std::string& name);
PgmImage decode_jpeg(const std::string& bytes, const std::string& name);
// Any supported format, by content. Throws DataError naming `name`.
PgmImage decode_image(const std::string& bytes, const std::string& name);
// Reads a file (a PGM through read_pgm's bounded read). Throws DataError naming the path.
PgmImage read_image(const std::string& path);
// .pgm, .png, .jpg, .jpeg (any case): the files data folders are scanned for.
bool has_image_extension(const std::string& path);

enum class Fit { Crop, Stretch };
// The image at width x height: with Fit::Crop first the largest centred window of the target's
// aspect ratio; then each axis resampled (area averaging when it shrinks, bilinear when it
// grows); samples rounded, maxval kept. The same size is returned unchanged.
PgmImage fit_image(const PgmImage& img, int width, int height, Fit fit);

}  // namespace siamese
