// Shared test helpers: temporary folders, relative error, running the CLI.
#pragma once
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "siamese/common.hpp"

namespace testutil {

// The message of the DataError f() throws, or "(no error)".
inline std::string expect_data_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const siamese::DataError& e) {
        return e.what();
    }
    return "(no error)";
}

inline std::string temp_dir(const std::string& name) {
    const auto p = std::filesystem::temp_directory_path() / ("siamese_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p.string();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f << bytes;
}

// ||a - b|| / ||b||
template <class A, class B>
double rel_error(const A& a, const B& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// The real ORL faces for the tests that need them: $SIAMESE_ORL_DIR, else
// ../shared/data/orl_faces beside the source tree; empty when neither exists (the test skips).
inline std::string find_orl_dir(const std::string& source_dir) {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("SIAMESE_ORL_DIR"); env && *env)
        return fs::is_directory(env) ? std::string(env) : std::string();
    const fs::path p = fs::path(source_dir) / ".." / "shared" / "data" / "orl_faces";
    std::error_code ec;
    return fs::is_directory(p / "s1", ec) ? fs::canonical(p).string() : std::string();
}

inline std::vector<double> random_vector(size_t n, std::mt19937_64& r, double lo = -1, double hi = 1) {
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<double> v(n);
    for (auto& x : v) x = u(r);
    return v;
}

struct RunResult {
    int status;
    std::string out;  // stdout and stderr together
};

// Runs the siamese binary with arguments (a shell string); returns exit status and output.
inline RunResult run_cli(const std::string& args) {
    const std::string cmd = std::string(SIAMESE_BINARY) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    RunResult r{-1, ""};
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

}  // namespace testutil
