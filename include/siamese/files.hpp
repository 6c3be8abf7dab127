// Files as wholes: read at once, written atomically (a temporary file, fsync, rename), and the
// FNV-1a hash of the fingerprints and order checksums the program records.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

// The size of a regular file; DataError naming the path for anything else (folder, FIFO, device).
uint64_t regular_file_size(const std::string& path);
// The whole of a regular file (anything else is refused), at most max_bytes of it (a larger
// file is refused before reading). Throws DataError naming the path.
std::string read_file_bytes(const std::string& path, size_t max_bytes = size_t(1) << 31);

// Bytes held elsewhere: a piece of a file written without first copying it into one buffer.
struct ByteSpan {
    const char* data;
    size_t size;
};
// Writes the pieces, in order, to path atomically (path.tmp, fsync, rename). Throws DataError.
void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& pieces);
void write_file_atomic(const std::string& path, const std::string& bytes);

// FNV-1a 64-bit hash, as 16 hex digits. fnv1a64 continues a hash over more bytes (start from
// kFnv1a64Offset), so that pieces held apart hash as their concatenation would.
constexpr uint64_t kFnv1a64Offset = 0xCBF29CE484222325ull;
uint64_t fnv1a64(uint64_t h, const char* data, size_t n);
std::string hex64(uint64_t h);
std::string fnv1a64_hex(const char* data, size_t n);

// Strict number parsing for values read from files: the whole text must be the number ("0.5abc",
// " 1", "" are refused), finite, and, for integers, within [lo, hi]. False when not.
bool parse_finite(const std::string& s, double* out);
bool parse_int_in(const std::string& s, long lo, long hi, long* out);

}  // namespace siamese
