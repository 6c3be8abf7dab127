// Galleries, identification with open-set rejection, its figures, and the run report's pictures.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>

#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/gallery.hpp"
#include "siamese/pgm.hpp"
#include "siamese/report.hpp"
#include "siamese/synth.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace siamese;
using testutil::run_cli;

namespace {
// Writes people x images synthetic faces to dir/faces and trains a small model on them into
// dir/run (downsample 4 keeps it quick).
void faces_and_model(const std::string& dir, int people, int images, int epochs) {
    SynthOptions o;
    o.people = people;
    o.images = images;
    write_synth(dir + "/faces", o);
    REQUIRE(run_cli("train --data " + dir + "/faces --epochs " + std::to_string(epochs) +
                    " --downsample 4 --device cpu --quiet --out " + dir + "/run").status == 0);
}
}  // namespace

TEST_CASE("open-set identification figures on a hand-worked case", "[identify]") {
    // Three probes of enrolled people: A (person 0) right at 0.2; B (person 1) ranked second;
    // C (person 0) right but far, at 0.6. Ten strangers' nearest distances below.
    const std::vector<std::vector<PersonMatch>> known = {
        {{0, 0.2f}, {1, 0.5f}}, {{0, 0.2f}, {1, 0.3f}}, {{0, 0.6f}, {1, 0.7f}}};
    const std::vector<int> truth = {0, 1, 0};
    const std::vector<float> strangers = {1.4f, 0.15f, 0.4f, 0.5f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f, 1.3f};
    const IdentifyReport r = identification_figures(known, truth, strangers);
    CHECK(r.rank1 == Approx(2.0 / 3));
    CHECK(r.rank5 == Approx(1.0));
    // FAR 1%: no stranger may pass: t = 0.15 (the nearest stranger), A at 0.2 is rejected too.
    CHECK(r.threshold_far1 == Approx(0.15));
    CHECK(r.dir_far1 == Approx(0.0));
    // FAR 10%: one stranger (0.15) may pass: t = 0.4; A is accepted and right, C (0.6) is not.
    CHECK(r.threshold_far10 == Approx(0.4));
    CHECK(r.dir_far10 == Approx(1.0 / 3));
}

TEST_CASE("people ranked by nearest photo or by mean embedding", "[identify]") {
    Gallery g;
    g.embed_dim = 1;
    const float a1 = 0.0f, a2 = 10.0f, b1 = 4.0f;
    g.add("anna", &a1, "a1");
    g.add("anna", &a2, "a2");
    g.add("ben", &b1, "b1");
    const float probe = 1.0f;
    const auto nearest = rank_people(g, &probe, false);
    REQUIRE(nearest.size() == 2);
    CHECK(g.people[nearest[0].person] == "anna");  // 1 from anna's first photo
    CHECK(nearest[0].distance == Approx(1.0f));
    const auto mean = rank_people(g, &probe, true);
    CHECK(g.people[mean[0].person] == "ben");  // anna's mean is 5: 4 away; ben 3 away
    CHECK(mean[0].distance == Approx(3.0f));
    g.remove_person("anna");
    CHECK(g.size() == 1);
    CHECK(rank_people(g, &probe, false).size() == 1);

    const std::string dir = testutil::temp_dir("gallery");
    g.add("carl", &a2, "c1");
    save_gallery(dir + "/g.safetensors", g);
    const Gallery back = load_gallery(dir + "/g.safetensors");
    CHECK(back.people == g.people);
    CHECK(back.owner == g.owner);
    CHECK(back.sources == g.sources);
    CHECK(back.embeddings == g.embeddings);
}

TEST_CASE("enroll, append, replace and identify from the command line", "[identify][cli]") {
    const std::string dir = testutil::temp_dir("enroll");
    faces_and_model(dir, 5, 3, 1);
    const std::string model = dir + "/run/model.safetensors", g = dir + "/g.safetensors";
    // Enroll people s1 and s2 from a folder of person folders.
    fs::create_directories(dir + "/staff");
    fs::copy(dir + "/faces/s1", dir + "/staff/s1");
    fs::copy(dir + "/faces/s2", dir + "/staff/s2");
    auto r = run_cli("enroll --model " + model + " --data " + dir + "/staff --out " + g);
    INFO(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find(": 6 photos enrolled (2 new people); the gallery holds 2 people, 6 photos") != std::string::npos);
    CHECK(load_gallery(g).size() == 6);
    CHECK(run_cli("enroll --model " + model + " --data " + dir + "/staff --out " + g).status == 1);  // exists
    r = run_cli("enroll --model " + model + " --append --data " + dir + "/staff --out " + g);
    CHECK(r.status == 1);
    CHECK(r.out.find("already enrolled") != std::string::npos);
    CHECK(run_cli("enroll --model " + model + " --append --replace --data " + dir + "/staff --out " + g).status == 0);
    CHECK(load_gallery(g).size() == 6);
    // Add a new person from one photo, then a second photo of them.
    r = run_cli("enroll --model " + model + " --append --person s3 " + dir + "/faces/s3/1.pgm --out " + g);
    CHECK(r.status == 0);
    CHECK(r.out.find(": 1 photo enrolled (1 new person); the gallery holds 3 people, 7 photos") != std::string::npos);
    CHECK(run_cli("enroll --model " + model + " --append --person s3 " + dir + "/faces/s3/2.pgm --out " + g).status == 0);
    CHECK(run_cli("enroll --model " + model + " --append --person s3 " + dir + "/faces/s3/2.pgm --out " + g).status == 1);
    const Gallery gal = load_gallery(g);
    CHECK(gal.people == std::vector<std::string>{"s1", "s2", "s3"});
    CHECK(gal.size() == 8);

    // An enrolled photo is found as its own person, at distance ~0, in JSON lines.
    r = run_cli("identify --json --model " + model + " --gallery " + g + " " + dir + "/faces/s2/1.pgm " + dir + "/faces/s5");
    REQUIRE(r.status == 0);
    std::istringstream lines(r.out);
    std::string line;
    std::vector<nlohmann::json> out;
    while (std::getline(lines, line)) out.push_back(nlohmann::json::parse(line));
    REQUIRE(out.size() == 4);  // one probe file + a folder of 3
    CHECK(out[0]["identity"] == "s2");
    CHECK(out[0]["distance"].get<double>() < 1e-3);
    CHECK(out[0]["top"].size() == 3);
    CHECK(out[0]["top"][0]["person"] == "s2");
    CHECK(out[0]["top"][1]["distance"].get<double>() >= out[0]["top"][0]["distance"].get<double>());
    // Open set: a threshold of 0 rejects everyone, a huge one accepts the nearest person.
    r = run_cli("identify --json --threshold 0 --model " + model + " --gallery " + g + " " + dir + "/faces/s2/1.pgm");
    CHECK(nlohmann::json::parse(r.out)["identity"] == "unknown");
    r = run_cli("identify --json --threshold 1e9 --model " + model + " --gallery " + g + " " + dir + "/faces/s5/1.pgm");
    CHECK(nlohmann::json::parse(r.out)["identity"] != "unknown");
    // A gallery from another model is refused.
    REQUIRE(run_cli("train --data " + dir + "/faces --epochs 1 --seed 2 --downsample 4 --device cpu --quiet --out " + dir + "/run2").status == 0);
    r = run_cli("identify --model " + dir + "/run2/model.safetensors --gallery " + g + " " + dir + "/faces/s1/1.pgm");
    CHECK(r.status == 1);
    CHECK(r.out.find("another model") != std::string::npos);
    // eval --identify gives the figures as JSON.
    r = run_cli("eval --identify --json --model " + model + " --data " + dir + "/faces --gallery-people 1-3 --draws 3");
    INFO(r.out);
    REQUIRE(r.status == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["gallery_people"] == 3);
    CHECK(j["known_probes"] == 6);     // 3 people x (3 - 1 enrolled) photos
    CHECK(j["stranger_probes"] == 6);  // 2 strangers x 3 photos
    // The text form names the false-alarm thresholds to pass to identify (4 decimals).
    const auto text = run_cli("eval --identify --model " + model + " --data " + dir + "/faces --gallery-people 1-3 --draws 3");
    INFO(text.out);
    REQUIRE(text.status == 0);
    char expect[96];
    std::snprintf(expect, sizeof expect, "identify --threshold: %.4f (1%% false alarms), %.4f (10%%)",
                  j["threshold_far_1pct"].get<double>(), j["threshold_far_10pct"].get<double>());
    CHECK(text.out.find(expect) != std::string::npos);
    // Every probe photo enrolled: no probe at all is an error, not rates of 0.0000.
    const auto none = run_cli("eval --identify --model " + model + " --data " + dir +
                              "/faces --gallery-people 1-3 --probe-people 1-3 --gallery-images 3");
    INFO(none.out);
    CHECK(none.status == 2);
    CHECK(none.out.find("no probe") != std::string::npos);
    CHECK(j["rank5"].get<double>() == Approx(1.0));  // only 3 people: always within 5
}

namespace {
int count_of(const std::string& s, const std::string& what) {
    int n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("every run writes SVG plots and a self-contained report", "[identify][report]") {
    const std::string dir = testutil::temp_dir("report");
    faces_and_model(dir, 4, 3, 3);
    const auto summary = nlohmann::json::parse(read_file_bytes(dir + "/run/summary.json"));
    const std::string loss = read_file_bytes(dir + "/run/loss.svg");
    CHECK(loss.rfind("<svg", 0) == 0);
    CHECK(count_of(loss, "<svg") == count_of(loss, "</svg>"));
    CHECK(loss.find("data-name=\"train loss\"") != std::string::npos);
    CHECK(loss.find("data-name=\"validation loss\"") != std::string::npos);
    // One point per epoch in each loss series.
    const std::regex poly("data-name=\"train loss\"[^>]*points=\"([^\"]*)\"");
    std::smatch m;
    REQUIRE(std::regex_search(loss, m, poly));
    CHECK(count_of(m[1].str(), ",") == 3);
    const std::string roc = read_file_bytes(dir + "/run/roc.svg");
    CHECK(roc.find("class=\"mark\"") != std::string::npos);
    char eer[32];
    std::snprintf(eer, sizeof eer, "EER %.4g", summary["test"]["eer"].get<double>());
    CHECK(roc.find(eer) != std::string::npos);
    const std::string hist = read_file_bytes(dir + "/run/distances.svg");
    CHECK(hist.find("data-name=\"genuine pairs\"") != std::string::npos);
    CHECK(hist.find("data-name=\"impostor pairs\"") != std::string::npos);
    char thr[64];
    std::snprintf(thr, sizeof thr, "class=\"threshold\" data-value=\"%.4g\"", summary["threshold"].get<double>());
    CHECK(hist.find(thr) != std::string::npos);
    const std::string html = read_file_bytes(dir + "/run/report.html");
    CHECK(html.find("<!DOCTYPE html>") == 0);
    CHECK(count_of(html, "<svg") == 4);  // loss, ROC, DET, distances
    CHECK(html.find("src=") == std::string::npos);   // no external assets
    CHECK(html.find("href=") == std::string::npos);
    // Figures rounded to four decimals, labels without JSON quotes, the baselines beside them.
    std::smatch am;
    REQUIRE(std::regex_search(html, am, std::regex("<th>test auc</th><td>([^<]*)</td>")));
    CHECK(am[1].str().size() <= 6);  // "0.9876" or "1"
    CHECK(std::stod(am[1].str()) == Approx(summary["test"]["auc"].get<double>()).margin(5e-5));
    CHECK(html.find("<th>protocol</th><td>tutorial</td>") != std::string::npos);
    CHECK(html.find("<th>baseline pixels auc</th>") != std::string::npos);
    CHECK(html.find("<th>baseline eigenfaces auc</th>") != std::string::npos);
    // Ticks at round values: every tick label of the ROC is a multiple of its step (0.2 here).
    const std::regex tick("class=\"xtick\"[^>]*>([^<]*)<");
    for (auto it = std::sregex_iterator(roc.begin(), roc.end(), tick); it != std::sregex_iterator(); ++it) {
        const double v = std::stod((*it)[1].str());
        CHECK(std::fabs(v * 5 - std::round(v * 5)) < 1e-9);
    }
    const std::string det = read_file_bytes(dir + "/run/det.svg");
    CHECK(det.find("DET") != std::string::npos);
}

TEST_CASE("plots stay small whatever the number of test pairs", "[identify][report]") {
    // A test person with 10,000 photos once made a 274 MB roc.svg: one point per distinct distance.
    const std::string dir = testutil::temp_dir("report_scale");
    std::mt19937_64 r(7);
    std::uniform_real_distribution<double> u(0, 1);
    const size_t n = 400000;
    std::vector<float> d(n), y(n);
    for (size_t i = 0; i < n; ++i) {
        y[i] = float(i % 10 == 0);
        d[i] = float(y[i] > 0.5f ? 0.6 * u(r) : 0.3 + 0.7 * u(r));
    }
    const nlohmann::json summary = {{"history", nlohmann::json::array({{{"epoch", 1}, {"loss", 0.5}, {"val_loss", 0.6}}})},
                                    {"threshold", 0.45}, {"test", {{"auc", 0.9}}}};
    siamese::write_run_report(dir, summary, d, y);
    for (const char* f : {"roc.svg", "distances.svg", "report.html"}) {
        INFO(f);
        CHECK(std::filesystem::file_size(dir + "/" + f) < 200000);
    }
    const std::string roc = siamese::read_file_bytes(dir + "/roc.svg");
    CHECK(roc.find("EER") != std::string::npos);
}
