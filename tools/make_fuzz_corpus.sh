#!/usr/bin/env bash
# Writes the fuzzers' seed corpora into fuzz/corpus/{pgm,checkpoint,gallery,train_state,png,jpeg,pair_list}:
# a few valid and broken PGMs and pair lists, and a tiny model, gallery and training state made by the engine itself.  usage: tools/make_fuzz_corpus.sh BUILD_DIR
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
p="$root/fuzz/corpus/pgm"; c="$root/fuzz/corpus/checkpoint"; g="$root/fuzz/corpus/gallery"; s="$root/fuzz/corpus/train_state"
mkdir -p "$p" "$c" "$g" "$s"
printf 'P5\n3 2\n255\n\x00\x10\x20\x30\x40\xff' > "$p/p5_8bit.pgm"
printf 'P5\n2 1\n1000\n\x01\x02\x03\xe8' > "$p/p5_16bit.pgm"
printf 'P2 # c\n3 2\n15\n1 2 3\n4 5 15\n' > "$p/p2_comments.pgm"
printf 'P5\n#c\n2 1\n#d\n255\n #' > "$p/p5_header_comments.pgm"
printf 'P5\n16384 16384\n255\n\x01' > "$p/forged_size.pgm"
printf 'P2\n2 2\n10\n1 2 x 3' > "$p/p2_not_number.pgm"
l="$root/fuzz/corpus/pair_list"; mkdir -p "$l"
printf '# c\na.pgm b.pgm 1\r\nmy c.png\td.jpg\tdifferent\n\n  e f same\n' > "$l/labelled.txt"
printf 'a.pgm b.pgm\nc.pgm d.pgm\n' > "$l/unlabelled.txt"
printf 'a b 1\nc d\n' > "$l/mixed.txt"
tmp=$(mktemp -d)
"$build/siamese" synth --out "$tmp/faces" --people 3 --images 2 > /dev/null
"$build/siamese" train --data "$tmp/faces" --protocol tutorial --epochs 1 --downsample 8 --conv-filters 2 --dense 4 \
  --device cpu --quiet --out "$tmp/run" > /dev/null
cp "$tmp/run/model.safetensors" "$c/tiny_model.safetensors"
head -c 200 "$tmp/run/model.safetensors" > "$c/truncated.safetensors"
"$build/siamese" enroll --model "$tmp/run/model.safetensors" --data "$tmp/faces" --out "$g/tiny.gallery" --device cpu > /dev/null
head -c 300 "$g/tiny.gallery" > "$g/truncated.gallery"
cp "$tmp/run/state.safetensors" "$s/tiny_state.safetensors"
head -c 300 "$tmp/run/state.safetensors" > "$s/truncated_state.safetensors"
# PNG and JPEG seeds, written with the test writers (libpng, libjpeg-turbo).
mkdir -p "$root/fuzz/corpus/png" "$root/fuzz/corpus/jpeg"
g++ -O1 -o "$tmp/make_image_seeds" "$root/tools/make_image_seeds.cpp" -lpng -ljpeg
"$tmp/make_image_seeds" "$root/fuzz/corpus/png" "$root/fuzz/corpus/jpeg"
rm -rf "$tmp"
ls -la "$p" "$c" "$g" "$s" "$root/fuzz/corpus/png" "$root/fuzz/corpus/jpeg"
