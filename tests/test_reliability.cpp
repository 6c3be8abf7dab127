// Crash-safe training, numerical faults and the bad-input matrix, as a user meets them on the
// command line: one clear message, a non-zero exit status, nothing half-written.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <limits>
#include <cstdlib>
#include <sstream>
#include <tuple>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "siamese/gallery.hpp"
#include "siamese/files.hpp"
#include "siamese/model.hpp"
#include "siamese/safetensors.hpp"
#include "siamese/pgm.hpp"
#include "siamese/run.hpp"
#include "siamese/synth.hpp"
#include "siamese/train_state.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using testutil::run_cli;

namespace {

// A small folder of synthetic faces: `people` x `images`, 112 x 92.
std::string faces(const std::string& dir, int people, int images) {
    siamese::SynthOptions o;
    o.people = people;
    o.images = images;
    siamese::write_synth(dir, o);
    return dir;
}

// The train command line `common` (ending in a space) run whole into dir/full (it must succeed),
// and again into dir/part killed by SIGKILL after `kill_at` steps: that run's exit status.
int full_and_killed(const std::string& common, const std::string& dir, int kill_at) {
    REQUIRE(run_cli(common + "--out " + dir + "/full").status == 0);
    return run_cli(common + "--out " + dir + "/part --crash-after-steps " + std::to_string(kill_at)).status;
}

bool absent_or_empty(const std::string& dir) { return !fs::exists(dir) || fs::is_empty(dir); }

siamese::PgmImage flat_image(int w, int h) {
    siamese::PgmImage img;
    img.width = w;
    img.height = h;
    img.maxval = 255;
    img.samples.assign(size_t(w) * h, 100);
    return img;
}

}  // namespace

TEST_CASE("a run killed with SIGKILL mid-epoch resumes to bit-identical weights", "[reliability][resume]") {
    const std::string dir = testutil::temp_dir("resume");
    faces(dir + "/faces", 5, 4);
    // --downsample 4 (28 x 23): what is checked (the checkpoints, the kill, the resumed bits) does
    // not depend on the image size, and the sanitized CI runs it 4x faster.
    const std::string common = "train --data " + dir + "/faces --protocol people --test-people 4-5 --epochs 3 "
                               "--checkpoint-every 4 --downsample 4 --device cpu --quiet ";
    // 3 training people: 1,500 pairs, 1,125 for training: 9 batches an epoch. Checkpoints at
    // steps 4, 8, 9 (epoch end), 12; the kill at step 14 is mid-epoch 2, two steps past step 12.
    CHECK(full_and_killed(common, dir, 14) == 128 + 9);  // the shell's status for a child killed by SIGKILL
    const siamese::TrainState st = siamese::load_train_state(dir + "/part/state.safetensors");
    CHECK(st.progress.epoch == 2);
    CHECK(st.progress.step == 12);
    CHECK(st.progress.next_batch == 3);
    CHECK_FALSE(fs::exists(dir + "/part/model.safetensors"));
    const auto resumed = run_cli("train --resume " + dir + "/part --device cpu --quiet --threads 1");
    INFO(resumed.out);
    REQUIRE(resumed.status == 0);
    CHECK(siamese::read_file_bytes(dir + "/part/model.safetensors") == siamese::read_file_bytes(dir + "/full/model.safetensors"));
    const auto a = nlohmann::json::parse(siamese::read_file_bytes(dir + "/full/summary.json"));
    const auto b = nlohmann::json::parse(siamese::read_file_bytes(dir + "/part/summary.json"));
    CHECK(a["test"] == b["test"]);
    CHECK(b["history"].size() == 3);
    for (int e = 0; e < 3; ++e) CHECK(a["history"][e]["loss"] == b["history"][e]["loss"]);
    // Resuming a finished run, or with options that belong to the saved run, is refused.
    CHECK(run_cli("train --resume " + dir + "/full").status == 2);
    CHECK(run_cli("train --resume " + dir + "/part --epochs 5").status == 2);
}

TEST_CASE("a resumed run keeps the precision options it started with", "[reliability][resume][tf32][half]") {
    // --tf32 and --half-bank change the numbers (both are honoured on the CPU), so a run killed
    // and resumed without them must still end with the uninterrupted run's weights.
    const std::string dir = testutil::temp_dir("resume_precision");
    faces(dir + "/faces", 5, 4);
    const std::string common = "train --data " + dir + "/faces --protocol people --test-people 4-5 --epochs 2 "
                               "--checkpoint-every 4 --downsample 4 --device cpu --quiet --tf32 --half-bank ";
    REQUIRE(full_and_killed(common, dir, 6) == 128 + 9);
    const auto resumed = run_cli("train --resume " + dir + "/part --device cpu --quiet --threads 1");
    INFO(resumed.out);
    REQUIRE(resumed.status == 0);
    CHECK(resumed.out.find("note: --tf32, as the run in") != std::string::npos);
    CHECK(resumed.out.find("note: --half-bank, as the run in") != std::string::npos);
    CHECK(siamese::read_file_bytes(dir + "/part/model.safetensors") == siamese::read_file_bytes(dir + "/full/model.safetensors"));
    const auto b = nlohmann::json::parse(siamese::read_file_bytes(dir + "/part/summary.json"));
    CHECK(b["tf32"] == true);
    CHECK(b["half_bank"] == true);
    // A run started without them is not resumed with them.
    const std::string plain = "train --data " + dir + "/faces --protocol people --test-people 4-5 --epochs 2 "
                              "--checkpoint-every 4 --downsample 4 --device cpu --quiet --out " + dir + "/plain";
    REQUIRE(run_cli(plain + " --crash-after-steps 6").status == 128 + 9);
    const auto refused = run_cli("train --resume " + dir + "/plain --tf32");
    CHECK(refused.status == 2);
    CHECK(refused.out.find("--tf32 differs from the run in") != std::string::npos);
}

TEST_CASE("a diverging run stops naming the step and keeps the last good checkpoint", "[reliability]") {
    const std::string dir = testutil::temp_dir("diverge");
    faces(dir + "/faces", 4, 3);
    const auto r = run_cli("train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 2 --lr 1e30 "
                           "--checkpoint-every 1 --device cpu --out " + dir + "/run");
    CHECK(r.status == 1);
    CHECK(r.out.find("non-finite") != std::string::npos);
    CHECK(r.out.find("step") != std::string::npos);
    CHECK(r.out.find("the last checkpoint is kept") != std::string::npos);
    const siamese::TrainState st = siamese::load_train_state(dir + "/run/state.safetensors");
    for (float v : st.params) REQUIRE(std::isfinite(v));
    CHECK_FALSE(fs::exists(dir + "/run/model.safetensors"));
    // Diverging before any checkpoint: the message must not promise one.
    const auto r2 = run_cli("train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 2 --lr 1e30 "
                            "--device cpu --out " + dir + "/run2");
    CHECK(r2.status == 1);
    CHECK(r2.out.find("no checkpoint had been written yet") != std::string::npos);
}

TEST_CASE("bad data folders: one clear message, exit 1, no output folder", "[reliability][badinput]") {
    const std::string dir = testutil::temp_dir("badinput");
    auto expect = [&](const std::string& data, const std::string& words) {
        const std::string out = dir + "/out_" + std::to_string(std::rand());
        const auto r = run_cli("train --device cpu --data " + data + " --out " + out);
        INFO(data << ": " << r.out);
        CHECK(r.status == 1);
        CHECK(r.out.find(words) != std::string::npos);
        CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
        CHECK(absent_or_empty(out));
    };
    expect(dir + "/missing", "does not exist");
    fs::create_directories(dir + "/empty");
    expect(dir + "/empty", "no person folders");
    testutil::write_bytes(dir + "/afile", "x");
    expect(dir + "/afile", "not a folder");
    fs::create_directories(dir + "/noimages/a");
    fs::create_directories(dir + "/noimages/b");
    siamese::write_pgm(dir + "/noimages/a/1.pgm", flat_image(20, 20));
    expect(dir + "/noimages", "noimages/b: person folder has no images");
    fs::create_directories(dir + "/oneperson/a");
    siamese::write_pgm(dir + "/oneperson/a/1.pgm", flat_image(20, 20));
    siamese::write_pgm(dir + "/oneperson/a/2.pgm", flat_image(20, 20));
    expect(dir + "/oneperson", "fewer than two people");
    fs::create_directories(dir + "/corrupt/a");
    testutil::write_bytes(dir + "/corrupt/a/1.pgm", "P5\n20 20\n255\nshort");
    expect(dir + "/corrupt", "corrupt/a/1.pgm: truncated raster");
}

TEST_CASE("an unreadable data folder is reported", "[reliability][badinput]") {
    if (::geteuid() == 0) {
        std::printf("SKIPPED: running as root, which reads any folder whatever its permissions\n");
        return;
    }
    const std::string dir = testutil::temp_dir("unreadable");
    fs::create_directories(dir + "/data/a");
    fs::permissions(dir + "/data", fs::perms::none);
    const auto r = run_cli("train --device cpu --data " + dir + "/data --out " + dir + "/out");
    fs::permissions(dir + "/data", fs::perms::owner_all);
    CHECK(r.status == 1);
    CHECK(r.out.find("cannot read folder") != std::string::npos);
}

TEST_CASE("odd but usable data: a warning, and training goes on", "[reliability][badinput]") {
    const std::string dir = testutil::temp_dir("oddinput");
    faces(dir + "/faces", 4, 3);
    testutil::write_bytes(dir + "/faces/s1/notes.txt", "not an image");
    fs::create_directories(dir + "/faces/s5");
    fs::copy_file(dir + "/faces/s1/1.pgm", dir + "/faces/s5/1.pgm");  // a person with one image
    const auto r = run_cli("train --device cpu --epochs 1 --downsample 4 --quiet --data " + dir + "/faces --out " + dir + "/out");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.find("notes.txt: not a .pgm, .png or .jpg file, skipped") != std::string::npos);
    CHECK(r.out.find("s5 has only one image") != std::string::npos);
    CHECK(fs::exists(dir + "/out/model.safetensors"));
}

TEST_CASE("options out of range: exit 2 before anything is written", "[reliability][badinput]") {
    const std::string dir = testutil::temp_dir("badopts");
    faces(dir + "/faces", 4, 2);
    const std::string base = "train --device cpu --data " + dir + "/faces --out " + dir + "/out ";
    for (const auto& [args, words] : std::vector<std::pair<std::string, std::string>>{
             {"--batch 0", "--batch"},
             {"--lr -0.1", "--lr"},
             {"--epochs 0", "--epochs"},
             {"--downsample 200", "larger than the image"},
             {"--protocol people --test-people 3-9", "out of range"},
             {"--protocol people --train-people 1-3 --test-people 3-4", "overlap"},
             {"--protocol tutorial --test-people 3-4", "--protocol people"},
             {"--conv-filters 6,x", "--conv-filters"},
             {"--kernel 40", "--kernel"},
             {"--kernel 9 --pool 8", "too small"},
             // Silently wrong once: NaN accepted, 1e-50 became 0, -1 and 1e23 became 2^64-1.
             {"--lr nan", "--lr"},
             {"--lr 1e-50", "--lr"},
             {"--margin nan", "--margin"},
             {"--margin inf", "--margin"},
             {"--conv-dropout 1", "--conv-dropout"},
             {"--seed -1", "--seed"},
             {"--seed 1e23", "--seed"},
             {"--seed 18446744073709551616", "--seed"},
             {"--lr 1e400", "--lr"},  // once printed a 300-digit maximum
             {"--loss softmax", "--sampler pk"},
             {"--sampler pk --loss softmax --temperature 0", "--temperature"},
             {"--sampler pk --loss softmax --temperature nan", "--temperature"},
             {"--loss hinge", "--loss"},
         }) {
        const auto r = run_cli(base + args);
        INFO(args << ": " << r.out);
        CHECK(r.status == 2);
        CHECK(r.out.find(words) != std::string::npos);
        CHECK(r.out.size() < 300);  // one readable line
        CHECK(absent_or_empty(dir + "/out"));
    }
}

TEST_CASE("corrupt model files: eval and verify exit 1 naming the file and the fault", "[reliability][checkpoint]") {
    const std::string dir = testutil::temp_dir("badmodel");
    faces(dir + "/faces", 3, 2);
    REQUIRE(run_cli("train --device cpu --epochs 1 --quiet --downsample 8 --data " + dir + "/faces --out " + dir + "/run").status == 0);
    const std::string good = siamese::read_file_bytes(dir + "/run/model.safetensors");
    std::string flipped = good;
    flipped[flipped.size() - 3] ^= 0x40;  // one bit of one weight
    std::string badjson = good;
    badjson[8] = '!';
    const std::vector<std::pair<std::string, std::string>> cases = {
        {good.substr(0, good.size() - 10), "outside the file"},
        {flipped, "checksum mismatch"},
        {badjson, "bad JSON header"},
        {good.substr(0, 4), "truncated"},
    };
    for (size_t k = 0; k < cases.size(); ++k) {
        const std::string path = dir + "/bad" + std::to_string(k) + ".safetensors";
        testutil::write_bytes(path, cases[k].first);
        for (const std::string& cmd : {"eval --model " + path + " --data " + dir + "/faces",
                                       "verify --model " + path + " " + dir + "/faces/s1/1.pgm " + dir + "/faces/s1/2.pgm"}) {
            const auto r = run_cli(cmd);
            INFO(cmd << ": " << r.out);
            CHECK(r.status == 1);
            CHECK(r.out.find(path) != std::string::npos);
            CHECK(r.out.find(cases[k].second) != std::string::npos);
        }
    }
}

TEST_CASE("a gallery whose embedding width differs from the model's is refused, whatever its metadata claims", "[reliability][gallery]") {
    // Once: forged model_checksum -> identify ranked with out-of-bounds reads and exit 0.
    const std::string dir = testutil::temp_dir("gallery_width");
    faces(dir + "/faces", 4, 3);
    const std::string common = " --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 1 --device cpu --quiet";
    REQUIRE(run_cli("train" + common + " --out " + dir + "/a").status == 0);
    REQUIRE(run_cli("train" + common + " --dense 64,20 --out " + dir + "/b").status == 0);
    const std::string ga = dir + "/a.gallery";
    REQUIRE(run_cli("enroll --model " + dir + "/a/model.safetensors --out " + ga + " --data " + dir + "/faces").status == 0);
    // Forge: gallery A claims model B.
    siamese::Gallery g = siamese::load_gallery(ga);
    const siamese::Model b = siamese::load_model(dir + "/b/model.safetensors");
    g.model_checksum = siamese::fnv1a64_hex(reinterpret_cast<const char*>(b.params.data()), b.params.size() * sizeof(float));
    siamese::save_gallery(ga, g);
    const auto id = run_cli("identify --model " + dir + "/b/model.safetensors --gallery " + ga + " " + dir + "/faces/s1");
    INFO(id.out);
    CHECK(id.status == 1);
    CHECK(id.out.find("wide") != std::string::npos);
    const auto en = run_cli("enroll --append --model " + dir + "/b/model.safetensors --out " + ga + " --person x " + dir +
                            "/faces/s1/1.pgm");
    INFO(en.out);
    CHECK(en.status == 1);
    CHECK(en.out.find("wide") != std::string::npos);
}

namespace {

// The saved state with one of its options replaced (a forged or damaged state file).
void forge_state(const std::string& path, const std::string& key, const nlohmann::json& value) {
    siamese::TrainState st = siamese::load_train_state(path);
    auto args = nlohmann::json::parse(st.args_json);
    args[key] = value;
    st.args_json = args.dump();
    siamese::save_train_state(path, st);
}

}  // namespace

TEST_CASE("saved options get the command line validation, and a finished run missing its model is finished on resume", "[reliability][resume]") {
    const std::string dir = testutil::temp_dir("resume_checks");
    faces(dir + "/faces", 4, 3);
    const std::string common = "train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 2 --device cpu "
                               "--threads 1 --quiet --checkpoint-every 2 ";
    REQUIRE(run_cli(common + "--out " + dir + "/full").status == 0);
    const std::string model = siamese::read_file_bytes(dir + "/full/model.safetensors");

    // Killed between the final state and the model (or a full disk then): resume finishes it.
    // On the same engine: the device is not a saved option, and the CUDA engine's validation
    // distances (hence the model's threshold) differ from the CPU's in the last bits.
    fs::remove(dir + "/full/model.safetensors");
    fs::remove(dir + "/full/summary.json");
    const auto fin = run_cli("train --resume " + dir + "/full --threads 1 --device cpu");
    INFO(fin.out);
    REQUIRE(fin.status == 0);
    CHECK(siamese::read_file_bytes(dir + "/full/model.safetensors") == model);
    CHECK(fs::exists(dir + "/full/summary.json"));
    CHECK(run_cli("train --resume " + dir + "/full").status == 2);  // now truly finished

    // A run killed mid-way, then resumed with options that differ from the saved ones.
    REQUIRE(run_cli(common + "--out " + dir + "/part --crash-after-steps 3").status == 128 + 9);
    auto r = run_cli("train --resume " + dir + "/part --margin 2");
    CHECK(r.status == 2);
    CHECK(r.out.find("--margin") != std::string::npos);
    r = run_cli("train --resume " + dir + "/part --out " + dir + "/elsewhere");
    CHECK(r.status == 2);
    // Saved options are validated as the command line's are (batch 0 was a SIGFPE, lr -1 ran).
    fs::copy(dir + "/part", dir + "/bad", fs::copy_options::recursive);
    const std::string bad_state = dir + "/bad/state.safetensors";
    for (const auto& [key, value, word] : std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
             {"batch", 0, "--batch"}, {"lr", -1.0, "--lr"}, {"epochs", 2000000000, "--epochs"}}) {
        fs::copy_file(dir + "/part/state.safetensors", bad_state, fs::copy_options::overwrite_existing);
        forge_state(bad_state, key, value);
        r = run_cli("train --resume " + dir + "/bad --threads 1");
        INFO(key << ": " << r.out);
        CHECK(r.status == 1);
        CHECK(r.out.find(word) != std::string::npos);
    }
    // History that is not JSON: a data error, not an internal one.
    siamese::TrainState st = siamese::load_train_state(dir + "/part/state.safetensors");
    st.history_json = "{not json";
    siamese::save_train_state(bad_state, st);
    r = run_cli("train --resume " + dir + "/bad --threads 1");
    CHECK(r.status == 1);

    // The same options given again are fine; changed data is refused, naming it.
    fs::copy(dir + "/part", dir + "/part2", fs::copy_options::recursive);
    siamese::SynthOptions other;
    other.people = 4;
    other.images = 3;
    other.seed = 99;  // same people and counts, other pixels
    siamese::write_synth(dir + "/faces", other);
    r = run_cli("train --resume " + dir + "/part2 --threads 1");
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("data changed") != std::string::npos);
}

TEST_CASE("two runs into one output folder: the second is refused while the first holds it", "[reliability]") {
    const std::string dir = testutil::temp_dir("lock");
    faces(dir + "/faces", 4, 3);
    fs::create_directories(dir + "/run");
    // Hold the run's lock as a first run would.
    const int fd = ::open((dir + "/run/.lock").c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    REQUIRE(::write(fd, "12345", 5) == 5);
    const std::string args = "train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 1 --device cpu "
                             "--quiet --out " + dir + "/run";
    auto r = run_cli(args);
    INFO(r.out);
    CHECK(r.status == 2);
    CHECK(r.out.find("in use") != std::string::npos);
    CHECK(r.out.find("12345") != std::string::npos);
    CHECK_FALSE(fs::exists(dir + "/run/model.safetensors"));
    ::close(fd);  // released: now it runs
    r = run_cli(args);
    CHECK(r.status == 0);
}

TEST_CASE("SIGTERM stops a run with a resume hint and exit 143, keeping its checkpoint", "[reliability][resume]") {
    const std::string dir = testutil::temp_dir("sigterm");
    faces(dir + "/faces", 4, 3);
    // A checkpoint after every step, so that one exists soon even under a sanitizer (~30x slower).
    const std::string cmd = std::string(SIAMESE_BINARY) + " train --data " + dir +
                            "/faces --protocol people --test-people 3-4 --epochs 200 --checkpoint-every 1 --device cpu "
                            "--threads 1 --out " + dir + "/run";
    // Start it in the background; its pid and exit status land in files.
    // The wrapper's own output goes to /dev/null too: it must not hold the test's pipe open.
    const std::string sh = "sh -c '" + cmd + " > " + dir + "/log 2>&1 & echo $! > " + dir + "/pid; wait $!; echo $? > " + dir +
                           "/rc' > /dev/null 2>&1 &";
    REQUIRE(std::system(sh.c_str()) == 0);
    // Wait (up to 5 minutes) for the first checkpoint, then stop it.
    for (int i = 0; i < 6000 && !fs::exists(dir + "/run/state.safetensors"); ++i) ::usleep(50000);
    for (int i = 0; i < 200 && !fs::exists(dir + "/pid"); ++i) ::usleep(50000);
    const pid_t pid = std::stoi(siamese::read_file_bytes(dir + "/pid"));
    const bool checkpointed = fs::exists(dir + "/run/state.safetensors");
    CHECK(::kill(pid, SIGTERM) == 0);
    for (int i = 0; i < 6000 && !fs::exists(dir + "/rc"); ++i) ::usleep(50000);
    if (!fs::exists(dir + "/rc")) ::kill(pid, SIGKILL);  // never leave it running
    REQUIRE(checkpointed);
    REQUIRE(fs::exists(dir + "/rc"));
    CHECK(std::stoi(siamese::read_file_bytes(dir + "/rc")) == 143);
    const std::string log = siamese::read_file_bytes(dir + "/log");
    INFO(log);
    CHECK(log.find("resume with: siamese train --resume") != std::string::npos);
    CHECK(siamese::load_train_state(dir + "/run/state.safetensors").progress.step >= 1);
}

TEST_CASE("the checksum covers the metadata: a flipped or edited value is refused, and so is a missing checksum", "[reliability][checkpoint]") {
    const std::string dir = testutil::temp_dir("meta_checksum");
    faces(dir + "/faces", 4, 2);
    REQUIRE(run_cli("train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 1 --device cpu --quiet --out " +
                    dir + "/run").status == 0);
    const std::string path = dir + "/run/model.safetensors";
    const std::string good = siamese::read_file_bytes(path);
    // One bit in the threshold's first digit (0.18 -> 1.18 once turned "different" into "same").
    const size_t at = good.find("\"threshold\":\"");
    REQUIRE(at != std::string::npos);
    std::string flipped = good;
    flipped[at + 13] ^= 0x01;
    testutil::write_bytes(dir + "/flipped.safetensors", flipped);
    auto r = run_cli("verify --model " + dir + "/flipped.safetensors " + dir + "/faces/s1/1.pgm " + dir + "/faces/s1/2.pgm");
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("checksum") != std::string::npos);
    // Values edited with a correct checksum are still parsed strictly.
    std::map<std::string, siamese::SafeTensor> tensors;
    std::map<std::string, std::string> meta;
    siamese::read_safetensors(path, tensors, meta);
    const std::vector<std::pair<std::string, siamese::SafeTensor>> list(tensors.begin(), tensors.end());
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"threshold", "inf"}, {"threshold", "nan"}, {"threshold", "0.5abc"}, {"margin", "-1"}, {"downsample", "0"}}) {
        auto m = meta;
        m[key] = value;
        siamese::write_safetensors(dir + "/edited.safetensors", list, m);
        CHECK_THROWS_WITH(siamese::load_model(dir + "/edited.safetensors"),
                          Catch::Contains("edited.safetensors") && Catch::Contains(key));
    }
    // Without its checksum (the key deleted, the file otherwise consistent): refused.
    const uint64_t n = uint64_t(uint8_t(good[0])) | uint64_t(uint8_t(good[1])) << 8 | uint64_t(uint8_t(good[2])) << 16;
    auto header = nlohmann::json::parse(good.substr(8, n));
    header["__metadata__"].erase("checksum");
    std::string h = header.dump();
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = char((uint64_t(h.size()) >> (8 * i)) & 0xFF);
    bytes += h + good.substr(8 + n);
    testutil::write_bytes(dir + "/nosum.safetensors", bytes);
    CHECK_THROWS_WITH(siamese::load_model(dir + "/nosum.safetensors"), Catch::Contains("no checksum"));
}

TEST_CASE("symlink loops in a data folder are skipped with a warning, not an internal error", "[reliability][badinput]") {
    const std::string dir = testutil::temp_dir("symloop");
    faces(dir + "/faces", 4, 3);
    fs::create_symlink("loop.pgm", dir + "/faces/s1/loop.pgm");  // points at itself
    fs::create_symlink("s9", dir + "/faces/s9");
    const auto r = run_cli("inspect " + dir + "/faces/s1/1.pgm");
    CHECK(r.status == 0);
    const auto t = run_cli("train --data " + dir + "/faces --protocol people --test-people 3-4 --epochs 1 --device cpu "
                           "--quiet --out " + dir + "/run");
    INFO(t.out);
    CHECK(t.status == 0);
    CHECK(t.out.find("skipped") != std::string::npos);
    CHECK(t.out.find("internal error") == std::string::npos);
}

TEST_CASE("file and person names that are not UTF-8 are carried as bytes, never an internal error", "[reliability][badinput]") {
    const std::string dir = testutil::temp_dir("nonutf8");
    faces(dir + "/faces", 4, 3);
    const std::string odd = std::string("s\xff", 2);  // not UTF-8
    fs::rename(dir + "/faces/s4", dir + "/faces/" + odd);
    fs::rename(dir + "/faces/" + odd + "/1.pgm", dir + "/faces/" + odd + "/\xfe" "1.pgm");
    const std::string faces_dir = dir + "/faces";
    auto r = run_cli("train --data " + faces_dir + " --protocol people --test-people 3-4 --epochs 1 --device cpu --quiet --out " +
                     dir + "/run");
    INFO(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("internal error") == std::string::npos);
    CHECK(nlohmann::json::parse(siamese::read_file_bytes(dir + "/run/summary.json")).contains("test"));
    r = run_cli("enroll --model " + dir + "/run/model.safetensors --data " + faces_dir + " --out " + dir + "/g.gallery");
    INFO(r.out);
    REQUIRE(r.status == 0);
    const siamese::Gallery g = siamese::load_gallery(dir + "/g.gallery");
    CHECK(g.find_person(odd) >= 0);  // the name exactly as written
    r = run_cli("identify --json --model " + dir + "/run/model.safetensors --gallery " + dir + "/g.gallery " + faces_dir + "/" +
                odd);
    REQUIRE(r.status == 0);
    size_t lines = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line); ++lines) CHECK_NOTHROW(nlohmann::json::parse(line));
    CHECK(lines == 3);
    r = run_cli("inspect " + faces_dir + "/" + odd + "/\xfe" "1.pgm");
    CHECK(r.status == 0);
    CHECK_NOTHROW(nlohmann::json::parse(r.out));
    CHECK(run_cli("pairs --data " + faces_dir + " --out " + dir + "/pairs.json").status == 0);
    // A resume reads the data folder back from the state, bytes intact.
    CHECK(siamese::recipe_from_json(siamese::load_train_state(dir + "/run/state.safetensors").args_json).data == faces_dir);
}

TEST_CASE("first_nonfinite_tensor names the first tensor holding an infinity or a NaN, none when all are finite", "[reliability]") {
    // The trainer asks it of every step's gradient: a fast all-finite pass, then the scan that
    // names the tensor.
    const siamese::ParamLayout L = siamese::make_layout(siamese::NetConfig{});
    std::vector<float> v(L.total, 1.5f);
    v[7] = -0.0f;
    v[L.total - 1] = std::numeric_limits<float>::max();
    v[L.total - 2] = std::numeric_limits<float>::denorm_min();
    CHECK(siamese::first_nonfinite_tensor(L, v.data()).empty());
    for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()}) {
        std::vector<float> w = v;
        w[L.total - 1] = bad;  // the last tensor's last element
        CHECK(siamese::first_nonfinite_tensor(L, w.data()) == L.tensors.back().name);
        w[L.tensors[1].offset] = bad;  // and an earlier tensor's first: that one is named
        CHECK(siamese::first_nonfinite_tensor(L, w.data()) == L.tensors[1].name);
    }
}
