#!/usr/bin/env bash
# The GPU machine's image has nvcc, CMake and PyTorch but not Debian's header-only libraries this
# project builds with (CLI11, nlohmann-json, Catch2, xxHash; libpng, libjpeg and zlib for photos), and it
# cannot download anything. This copies them, with their CMake package files (the photo libraries
# as static archives, so nothing needs loading at run time), into .deps/ (git-ignored) for the
# device tool to carry:
#   tools/pack_gpu_deps.sh            then, on the device:  tools/gpu_check.sh $OUT .orl
# (.orl: a git-ignored copy of the ORL faces, `cp -r ../shared/data/orl_faces .orl`; carry both).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
d="$root/.deps"
rm -rf "$d"
mkdir -p "$d/include" "$d/share/cmake" "$d/lib/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/catch2 "$d/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$d/share/cmake/"
cp -r /usr/lib/cmake/Catch2 "$d/lib/cmake/"
cp "$(dpkg -L catch2 | grep 'libCatch2WithMain\.a$' | head -1)" "$d/lib/"  # Catch2's package file names it
# Photos: headers and static archives (position-independent, so they link into PIE programs);
# CMake's FindPNG/FindJPEG/FindZLIB look under CMAKE_PREFIX_PATH before the system.
lib=/usr/lib/x86_64-linux-gnu
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/jpeglib.h \
  /usr/include/jerror.h /usr/include/jmorecfg.h /usr/include/x86_64-linux-gnu/jconfig.h \
  /usr/include/zlib.h /usr/include/zconf.h "$d/include/"
cp /usr/include/xxhash.h "$d/include/"  # the files' checksum, used header-only
cp "$lib/libpng16.a" "$d/lib/libpng16.a"
cp "$lib/libjpeg.a" "$lib/libz.a" "$d/lib/"
du -sh "$d"
