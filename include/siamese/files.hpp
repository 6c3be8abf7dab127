// Files as wholes: read at once, written atomically (a temporary file, fsync, rename), and the
// FNV-1a checksum the program's own files carry.
#pragma once
#include <cstddef>
#include <string>

namespace siamese {

std::string read_file_bytes(const std::string& path);  // throws DataError naming the path

// Writes bytes to path atomically (path.tmp, fsync, rename). Throws DataError.
void write_file_atomic(const std::string& path, const std::string& bytes);

// FNV-1a 64-bit hash, as 16 hex digits.
std::string fnv1a64_hex(const char* data, size_t n);

}  // namespace siamese
