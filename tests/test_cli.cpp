// The command line as a user meets it: help, exit statuses and messages.
#include <catch2/catch.hpp>
#include <filesystem>

#include "siamese/backend.hpp"
#include "siamese/files.hpp"
#include "siamese/common.hpp"
#include "siamese/pgm.hpp"
#include <nlohmann/json.hpp>

#include "test_util.hpp"

using testutil::run_cli;

TEST_CASE("every subcommand has --help", "[cli]") {
    for (const char* sub : {"", "train", "eval", "verify", "inspect", "synth"}) {
        INFO(sub);
        const auto r = run_cli(std::string(sub) + " --help");
        CHECK(r.status == 0);
        CHECK(r.out.find("Usage") != std::string::npos);
    }
}

TEST_CASE("siamese --version names the release and what the CUDA engine was built with", "[cli]") {
    const auto r = run_cli("--version");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("siamese " SIAMESE_VERSION_EXPECTED "\n", 0) == 0);
    CHECK(r.out.find("CUDA engine: ") != std::string::npos);
}

TEST_CASE("bad command lines exit 2 with one clear line", "[cli]") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"train --bogus", "bogus"},
        {"train --epochs abc", "epochs"},
        {"train --epochs 0", "epochs"},
        {"train --batch 0", "batch"},
        {"train --lr -1", "lr"},
        {"train --device tpu", "device"},
        {"train --epochs", "epochs"},
        {"", "subcommand"},
        {"frobnicate", "frobnicate"},
        {"verify --model m.safetensors onlyone.pgm", "second"},
        // One validation of the engine options for every command (100000 threads once crashed).
        {"identify --model m.safetensors --gallery g.safetensors --threads 100000 x.pgm", "threads"},
        {"enroll --model m.safetensors --out g.safetensors --threads 100000 --data d", "threads"},
        {"eval --model m.safetensors --data d --threads -1", "threads"},
        {"verify --model m.safetensors a.pgm b.pgm --device tpu", "device"},
        // Refused by the CUDA engine, so by the CPU's too (a command line means the same on both).
        {"train --tf32 --gemm custom --device cpu --epochs 1", "--gemm custom"},
        {"cv --tf32 --gemm custom --device cpu --epochs 1", "--gemm custom"},
        {"cv --gemm blas", "gemm"},
    };
    for (const auto& [args, word] : cases) {
        INFO(args << " -> " << "'" << run_cli(args).out << "'");
        const auto r = run_cli(args);
        CHECK(r.status == 2);
        CHECK(r.out.find(word) != std::string::npos);
    }
}

TEST_CASE("missing or bad data files exit 1 naming the path", "[cli]") {
    const std::string dir = testutil::temp_dir("cli");
    auto r = run_cli("train --data " + dir + "/nowhere --out " + dir + "/o");
    CHECK(r.status == 1);
    CHECK(r.out.find(dir + "/nowhere") != std::string::npos);
    testutil::write_bytes(dir + "/bad.pgm", "P5\n10 10\n255\n");
    r = run_cli("inspect " + dir + "/bad.pgm");
    CHECK(r.status == 1);
    CHECK(r.out.find("bad.pgm") != std::string::npos);
    CHECK(r.out.find("truncated raster") != std::string::npos);
    r = run_cli("eval --model " + dir + "/none.safetensors --data " + dir);
    CHECK(r.status == 1);
    CHECK(r.out.find("none.safetensors") != std::string::npos);
}

TEST_CASE("inspect prints one JSON line per file", "[cli]") {
    const std::string dir = testutil::temp_dir("cli_inspect");
    siamese::PgmImage img;
    img.width = 3;
    img.height = 2;
    img.maxval = 255;
    img.samples = {0, 10, 20, 30, 40, 50};
    siamese::write_pgm(dir + "/a.pgm", img);
    const auto r = run_cli("inspect " + dir + "/a.pgm " + dir + "/a.pgm");
    CHECK(r.status == 0);
    const auto line = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
    CHECK(line["width"] == 3);
    CHECK(line["height"] == 2);
    CHECK(line["max"] == 50);
    CHECK(line["mean"].get<double>() == Approx(25.0));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
}

TEST_CASE("synth, train, verify and eval work end to end", "[cli][training]") {
    const std::string dir = testutil::temp_dir("cli_e2e");
    REQUIRE(run_cli("synth --out " + dir + "/faces --people 6 --images 4 --seed 2").status == 0);
    const auto t = run_cli("train --data " + dir + "/faces --epochs 1 --device cpu --out " + dir + "/run");
    INFO(t.out);
    REQUIRE(t.status == 0);
    CHECK(t.out.find("epoch   1/1") != std::string::npos);
    const auto summary = nlohmann::json::parse(siamese::read_file_bytes(dir + "/run/summary.json"));
    for (const char* k : {"protocol", "device", "seed", "epochs", "train_pairs", "test_pairs", "threshold", "epoch_seconds"})
        CHECK(summary.contains(k));
    for (const char* k : {"accuracy", "accuracy_at_threshold", "auc", "eer", "tutorial_metric"}) CHECK(summary["test"].contains(k));
    CHECK(summary["epoch_seconds"].size() == 1);
    // --profile on the CPU: every phase of the steps, with as many calls as steps (small images:
    // the phases and their counts do not depend on the size).
    const auto p = run_cli("train --data " + dir + "/faces --epochs 1 --downsample 4 --device cpu --profile --quiet --out " + dir + "/prof");
    INFO(p.out);
    REQUIRE(p.status == 0);
    const long steps = (long(summary["train_pairs"]) + 127) / 128;
    for (const char* phase : {"conv forward (all blocks)", "dense forward", "loss", "dense backward", "conv backward (all blocks)",
                              "optimizer"}) {
        INFO(phase);
        const auto at = p.out.find(std::string("\n") + phase + " ");
        REQUIRE(at != std::string::npos);
        const long calls = std::stol(p.out.substr(at + 1 + std::string(phase).size()));
        CHECK(calls == (std::string(phase).rfind("dense", 0) == 0 ? 2 : 1) * steps);  // two dense layers a step
    }
    const auto v = run_cli("verify --model " + dir + "/run/model.safetensors " + dir + "/faces/s1/1.pgm " + dir + "/faces/s1/2.pgm");
    CHECK(v.status == 0);
    CHECK((v.out.find("same") != std::string::npos || v.out.find("different") != std::string::npos));
    const auto e = run_cli("eval --json --model " + dir + "/run/model.safetensors --data " + dir + "/faces --people 4-6");
    INFO(e.out);
    CHECK(e.status == 0);
    const auto j = nlohmann::json::parse(e.out);
    CHECK(j["pairs"] == 66);  // 12 images: 12*11/2
    CHECK(j.contains("oneshot_accuracy"));
    CHECK(j["oneshot_draws"] == 20);
    // --draws reaches the one-shot figure (it was once ignored: always 20 draws).
    const auto d = run_cli("eval --json --draws 3 --model " + dir + "/run/model.safetensors --data " + dir + "/faces --people 4-6");
    REQUIRE(d.status == 0);
    CHECK(nlohmann::json::parse(d.out)["oneshot_draws"] == 3);
}

TEST_CASE("cv takes train's engine options: precision options reach every fold, CUDA-only ones are named", "[cli][tf32][half]") {
    // 2 folds of 4 generated people, 1 epoch at quarter resolution: the options' path is what counts.
    const std::string dir = testutil::temp_dir("cv_engine");
    REQUIRE(run_cli("synth --out " + dir + "/faces --people 8 --images 4").status == 0);
    auto cv = [&](const std::string& flags) {
        const auto r = run_cli("cv --data " + dir + "/faces --folds 2 --epochs 1 --downsample 4 --device cpu --threads 2 --json " +
                               flags);
        INFO(flags << "\n" << r.out);
        REQUIRE(r.status == 0);
        return std::make_pair(nlohmann::json::parse(r.out.substr(r.out.find('{'))), r.out);
    };
    const auto plain = cv(""), tf32 = cv("--tf32"), half = cv("--half-bank"), fused = cv("--fused --gemm custom --no-graphs");
    for (const auto* run : {&tf32, &half}) {
        for (int f = 0; f < 2; ++f) {
            // The learned model trained otherwise; the pixel baseline (the bank as loaded) did not change.
            CHECK(run->first["folds"][f]["learned"]["test"] != plain.first["folds"][f]["learned"]["test"]);
            CHECK(run->first["folds"][f]["pixels"]["test"] == plain.first["folds"][f]["pixels"]["test"]);
        }
    }
    CHECK(tf32.second.find("note: --tf32 on the CPU is an emulation") != std::string::npos);
    // The JSON says how it was run: the engine options are not part of the recipe.
    CHECK(tf32.first["command"].get<std::string>().find(" --tf32") != std::string::npos);
    CHECK(plain.first["command"].get<std::string>().find("--tf32") == std::string::npos);
    // CUDA-only options: the CPU's results exactly, and one note naming them (not one a fold).
    for (int f = 0; f < 2; ++f) {
        nlohmann::json a = fused.first["folds"][f], b = plain.first["folds"][f];
        a.erase("seconds_per_epoch");
        b.erase("seconds_per_epoch");
        CHECK(a == b);
    }
    const std::string note = "note: --fused --gemm custom: CUDA engine options, ignored on the CPU";
    const size_t at = fused.second.find(note);
    CHECK(at != std::string::npos);
    CHECK(fused.second.find(note, at + 1) == std::string::npos);
}

TEST_CASE("asking for cuda without a usable GPU is a device error (exit 4), not a data error", "[cli]") {
    std::string why;
    if (siamese::cuda_device_available(&why)) {
        std::printf("SKIPPED: a CUDA device is present; this case checks the refusal where none is\n");
        return;
    }
    const std::string dir = testutil::temp_dir("nodevice");
    const auto r = run_cli("train --device cuda --epochs 1 --quiet --out " + dir + "/run");
    INFO(r.out);
    CHECK(r.status == siamese::kExitDevice);
    CHECK(r.out.find("device error") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir + "/run"));  // the engine is made before the folder
}

TEST_CASE("verify --pairs scores a labelled list as eval scores the same pairs, each photo once", "[cli][pairs]") {
    const std::string dir = testutil::temp_dir("cli_verify_pairs");
    REQUIRE(run_cli("synth --out " + dir + "/faces --people 6 --images 4 --seed 3").status == 0);
    REQUIRE(run_cli("train --data " + dir + "/faces --epochs 1 --downsample 4 --device cpu --quiet --out " + dir + "/run").status == 0);
    const std::string model = dir + "/run/model.safetensors";
    // Every pair among people 4-6 (12 photos, 66 pairs), the pairs `eval --people 4-6` rates,
    // written in the file's three spellings: tabs, spaces, words for the labels.
    std::string text = "# all pairs among s4..s6\n";
    std::vector<std::string> photos;
    for (int p = 4; p <= 6; ++p)
        for (int i = 1; i <= 4; ++i) photos.push_back(dir + "/faces/s" + std::to_string(p) + "/" + std::to_string(i) + ".pgm");
    int n = 0;
    for (size_t i = 0; i < photos.size(); ++i)
        for (size_t j = i + 1; j < photos.size(); ++j, ++n) {
            const bool same = i / 4 == j / 4;
            text += n % 3 == 0 ? photos[i] + "\t" + photos[j] + "\t" + (same ? "1" : "0")
                  : n % 3 == 1 ? photos[i] + " " + photos[j] + " " + (same ? "same" : "different")
                               : photos[i] + "  " + photos[j] + "  " + (same ? "1" : "0") + "\r";
            text += "\n";
        }
    testutil::write_bytes(dir + "/pairs.txt", text);
    const auto e = run_cli("eval --json --model " + model + " --data " + dir + "/faces --people 4-6 --device cpu");
    REQUIRE(e.status == 0);
    const auto ej = nlohmann::json::parse(e.out);
    const auto v = run_cli("verify --json --model " + model + " --pairs " + dir + "/pairs.txt --device cpu");
    INFO(v.out);
    REQUIRE(v.status == 0);
    const auto vj = nlohmann::json::parse(v.out);
    REQUIRE(vj["pairs"].size() == 66);
    CHECK(vj["figures"]["pairs"] == 66);
    CHECK(vj["figures"]["genuine_pairs"] == 18);  // 3 people x 4*3/2
    // The same photos, preprocessing and distance rule: the figures agree with eval's. The
    // embeddings come from other batches (12 photos here, the whole folder there); each image's
    // arithmetic does not depend on its batch, so the figures are equal, not merely close.
    for (const char* k : {"auc", "eer", "accuracy_at_threshold", "tar_at_far_1pct"}) {
        INFO(k);
        CHECK(vj["figures"][k].get<double>() == ej[k].get<double>());
    }
    CHECK(vj["threshold"].get<double>() == ej["threshold"].get<double>());
    // A pair of the list, verified alone, prints the list's distance (4 decimals).
    for (int k : {0, 17, 65}) {
        const auto& p = vj["pairs"][k];
        const auto one = run_cli("verify --model " + model + " " + p["first"].get<std::string>() + " " +
                                 p["second"].get<std::string>() + " --device cpu");
        REQUIRE(one.status == 0);
        char expect[64];
        std::snprintf(expect, sizeof expect, "distance %.4f ", p["distance"].get<double>());
        CHECK(one.out.find(expect) != std::string::npos);
        CHECK(p["label"] == (k == 0 || k == 65 ? 1 : 0));  // (s4/1, s4/2), (s6/3, s6/4); pair 17 is s5-s6
    }
    // --threshold decides every pair: "same" exactly where the distance is below it.
    char ts[64];
    std::snprintf(ts, sizeof ts, "%.9f", vj["pairs"][17]["distance"].get<double>() + 1e-6);
    const double t = std::stod(ts);
    const auto w = nlohmann::json::parse(
        run_cli("verify --json --model " + model + " --pairs " + dir + "/pairs.txt --device cpu --threshold " + ts).out);
    CHECK(w["threshold"].get<double>() == t);
    int same = 0, below = 0;
    for (const auto& p : w["pairs"]) {
        same += p["same"].get<bool>();
        below += p["distance"].get<double>() < t;
    }
    CHECK(same == below);
    CHECK(same > 0);
    // The text form: a header, one line per pair, mistakes marked, then the figures.
    const auto txt = run_cli("verify --model " + model + " --pairs " + dir + "/pairs.txt --device cpu");
    REQUIRE(txt.status == 0);
    CHECK(txt.out.find("66 pairs, 12 photos, threshold") != std::string::npos);
    CHECK(txt.out.find("ROC AUC") != std::string::npos);
    // Faults name the list's line; a bad command line exits 2.
    testutil::write_bytes(dir + "/missing.txt", photos[0] + " " + photos[1] + "\n" + photos[0] + " " + dir + "/faces/s9/1.pgm\n");
    const auto m = run_cli("verify --model " + model + " --pairs " + dir + "/missing.txt --device cpu");
    CHECK(m.status == 1);
    CHECK(m.out.find("missing.txt:2: " + dir + "/faces/s9/1.pgm: no such file") != std::string::npos);
    // `pairs --format list` writes a run's test pairs as such a list: rated again, they give the
    // run's figures (people protocol, test people 4-6: the same 66 pairs as above).
    REQUIRE(run_cli("pairs --data " + dir + "/faces --protocol people --train-people 1-3 --test-people 4-6 --format list --out " +
                    dir + "/test.txt").status == 0);
    const std::string listed = siamese::read_file_bytes(dir + "/test.txt");
    CHECK(listed.rfind("# siamese pairs: the test pairs of protocol people", 0) == 0);
    CHECK(listed.find(photos[0] + "\t" + photos[1] + "\t1\n") != std::string::npos);
    const auto again = nlohmann::json::parse(run_cli("verify --json --model " + model + " --pairs " + dir + "/test.txt --device cpu").out);
    CHECK(again["figures"] == vj["figures"]);
    // --root: the list's relative paths are taken from that folder (absolute ones stay).
    testutil::write_bytes(dir + "/rel.txt", "s4/1.pgm s4/2.pgm 1\n" + photos[0] + " s6/4.pgm 0\n");
    const auto rel = nlohmann::json::parse(
        run_cli("verify --json --model " + model + " --pairs " + dir + "/rel.txt --root " + dir + "/faces --device cpu").out);
    CHECK(rel["pairs"][0]["first"] == photos[0]);
    CHECK(rel["pairs"][0]["distance"] == vj["pairs"][0]["distance"]);  // (s4/1, s4/2): the same pair as the list's first
    CHECK(rel["pairs"][1]["second"] == photos[11]);
    CHECK(run_cli("verify --model " + model + " --pairs " + dir + "/rel.txt --device cpu").status == 1);  // s4/1.pgm: not here
    CHECK(run_cli("verify --model " + model + " --root " + dir + " " + photos[0] + " " + photos[1]).status == 2);
    CHECK(run_cli("verify --model " + model + " --pairs " + dir + "/pairs.txt " + photos[0]).status == 2);
    CHECK(run_cli("verify --model " + model + " " + photos[0] + " " + photos[1] + " --threshold inf").status == 2);
    CHECK(run_cli("identify --model " + model + " --gallery g " + photos[0] + " --threshold -1").status == 2);
}
