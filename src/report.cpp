#include "siamese/report.hpp"
#include "siamese/jsonio.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "siamese/files.hpp"
#include "siamese/metrics.hpp"

namespace siamese {

namespace {

constexpr double kW = 560, kH = 360, kL = 64, kR = 16, kT = 36, kB = 48;  // canvas and margins

std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else if (c == '"') o += "&quot;";
        else o += c;
    }
    return o;
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

// A frame maps data to the canvas; on log axes (DET curves) both coordinates are log10.
// A summary value as a reader wants it: strings without JSON quotes, whole numbers whole, other
// numbers to four decimals (rates, AUC, thresholds; finer digits are noise at these test sizes).
std::string shown(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
    if (v.is_number_float()) {
        char b[32];
        const double x = v.get<double>();
        std::snprintf(b, sizeof b, std::fabs(x) >= 1000 || x == std::floor(x) ? "%.6g" : "%.4f", x);
        return b;
    }
    return dump_json(v);
}

struct Frame {
    double x0, x1, y0, y1;
    bool log = false;
    double tx(double v) const { return log ? std::log10(std::max(v, 1e-300)) : v; }
    double px(double x) const { return kL + (tx(x) - tx(x0)) / (tx(x1) - tx(x0)) * (kW - kL - kR); }
    double py(double y) const { return kH - kB - (tx(y) - tx(y0)) / (tx(y1) - tx(y0)) * (kH - kT - kB); }
};

// A round tick step (1, 2 or 5 x 10^k) giving about five intervals over [lo, hi].
double nice_step(double lo, double hi) {
    const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0})
        if (raw <= m * mag * 1.0000001) return m * mag;
    return 10 * mag;
}

// Widens [lo, hi] to whole tick steps, so every tick is a round value and the data fits.
void round_range(double& lo, double& hi) {
    const double step = nice_step(lo, hi);
    lo = std::floor(lo / step + 1e-9) * step;
    hi = std::ceil(hi / step - 1e-9) * step;
}

// Tick values: round steps on linear axes, the decades on log axes.
std::vector<double> ticks(double lo, double hi, bool log) {
    std::vector<double> t;
    if (log) {
        for (double v = std::pow(10.0, std::ceil(std::log10(lo) - 1e-9)); v <= hi * 1.0000001; v *= 10) t.push_back(v);
        return t;
    }
    const double step = nice_step(lo, hi);
    for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
        t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
    return t;
}

// Axes with round ticks, labels and title.
void axes(std::ostringstream& o, const Frame& f, const std::string& title, const std::string& xl, const std::string& yl) {
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH << "\" viewBox=\"0 0 " << kW
      << " " << kH << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o << "<text class=\"title\" x=\"" << kW / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << esc(title) << "</text>\n";
    o << "<line x1=\"" << kL << "\" y1=\"" << kH - kB << "\" x2=\"" << kW - kR << "\" y2=\"" << kH - kB << "\" stroke=\"black\"/>\n";
    o << "<line x1=\"" << kL << "\" y1=\"" << kT << "\" x2=\"" << kL << "\" y2=\"" << kH - kB << "\" stroke=\"black\"/>\n";
    for (double xv : ticks(f.x0, f.x1, f.log))
        o << "<text class=\"xtick\" x=\"" << f.px(xv) << "\" y=\"" << kH - kB + 16 << "\" text-anchor=\"middle\">" << num(xv)
          << "</text>\n";
    for (double yv : ticks(f.y0, f.y1, f.log)) {
        o << "<text class=\"ytick\" x=\"" << kL - 6 << "\" y=\"" << f.py(yv) + 4 << "\" text-anchor=\"end\">" << num(yv)
          << "</text>\n";
        o << "<line x1=\"" << kL << "\" y1=\"" << f.py(yv) << "\" x2=\"" << kW - kR << "\" y2=\"" << f.py(yv)
          << "\" stroke=\"#ddd\"/>\n";
    }
    o << "<text x=\"" << (kL + kW - kR) / 2 << "\" y=\"" << kH - 10 << "\" text-anchor=\"middle\">" << esc(xl) << "</text>\n";
    o << "<text transform=\"translate(14," << (kT + kH - kB) / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << esc(yl)
      << "</text>\n";
}

void legend(std::ostringstream& o, const std::vector<Series>& series) {
    double y = kT + 8;
    for (const auto& s : series) {
        o << "<rect x=\"" << kW - kR - 150 << "\" y=\"" << y - 8 << "\" width=\"12\" height=\"4\" fill=\"" << s.color << "\"/>";
        o << "<text x=\"" << kW - kR - 132 << "\" y=\"" << y - 2 << "\">" << esc(s.name) << "</text>\n";
        y += 16;
    }
}

Frame frame_of(const std::vector<Series>& series, bool zero_based, bool log = false) {
    Frame f{1e300, -1e300, 1e300, -1e300, log};
    if (log) {  // decades around the positive values
        for (const auto& s : series)
            for (size_t i = 0; i < s.x.size(); ++i) {
                if (s.x[i] > 0) { f.x0 = std::min(f.x0, s.x[i]); f.x1 = std::max(f.x1, s.x[i]); }
                if (s.y[i] > 0) { f.y0 = std::min(f.y0, s.y[i]); f.y1 = std::max(f.y1, s.y[i]); }
            }
        auto decades = [](double& lo, double& hi) {
            if (lo > hi) { lo = 1e-3; hi = 1; }
            lo = std::pow(10.0, std::floor(std::log10(lo) + 1e-9));
            hi = std::max(std::pow(10.0, std::ceil(std::log10(hi) - 1e-9)), lo * 10);
        };
        decades(f.x0, f.x1);
        decades(f.y0, f.y1);
        return f;
    }
    for (const auto& s : series)
        for (size_t i = 0; i < s.x.size(); ++i) {
            f.x0 = std::min(f.x0, s.x[i]); f.x1 = std::max(f.x1, s.x[i]);
            f.y0 = std::min(f.y0, s.y[i]); f.y1 = std::max(f.y1, s.y[i]);
        }
    if (f.x0 > f.x1) f = {0, 1, 0, 1};
    if (zero_based) f.y0 = std::min(0.0, f.y0);
    if (f.x1 - f.x0 < 1e-12) f.x1 = f.x0 + 1;
    if (f.y1 - f.y0 < 1e-12) f.y1 = f.y0 + 1;
    round_range(f.x0, f.x1);
    round_range(f.y0, f.y1);
    return f;
}

}  // namespace

std::string svg_line_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                          const std::vector<Series>& series, const std::vector<Mark>& marks, bool log_axes) {
    const Frame f = frame_of(series, !log_axes, log_axes);
    std::ostringstream o;
    axes(o, f, title, xlabel, ylabel);
    for (const auto& s : series) {
        o << "<polyline class=\"series\" data-name=\"" << esc(s.name) << "\" fill=\"none\" stroke=\"" << s.color
          << "\" stroke-width=\"2\" points=\"";
        bool first = true;
        for (size_t i = 0; i < s.x.size(); ++i) {
            if (log_axes && !(s.x[i] >= f.x0 && s.y[i] >= f.y0)) continue;  // zero rates sit below a log axis
            o << (first ? "" : " ") << num(f.px(s.x[i])) << "," << num(f.py(s.y[i]));
            first = false;
        }
        o << "\"/>\n";
    }
    for (const auto& m : marks) {
        o << "<circle class=\"mark\" cx=\"" << f.px(m.x) << "\" cy=\"" << f.py(m.y) << "\" r=\"4\" fill=\"red\"/>";
        o << "<text x=\"" << f.px(m.x) + 8 << "\" y=\"" << f.py(m.y) - 6 << "\">" << esc(m.label) << "</text>\n";
    }
    legend(o, series);
    o << "</svg>\n";
    return o.str();
}

std::string svg_histograms(const std::string& title, const std::string& xlabel, const std::vector<Series>& samples,
                           double threshold, int bins) {
    double lo = threshold, hi = threshold;
    for (const auto& s : samples)
        for (double v : s.x) { lo = std::min(lo, v); hi = std::max(hi, v); }
    if (hi - lo < 1e-12) hi = lo + 1;
    const double w = (hi - lo) / bins;
    std::vector<Series> hist;
    for (const auto& s : samples) {  // fraction of each class per bin, as step curves
        std::vector<double> count(bins, 0);
        for (double v : s.x) count[std::min(bins - 1, int((v - lo) / w))] += 1;
        Series h{s.name, s.color, {}, {}};
        for (int b = 0; b < bins; ++b) {
            const double frac = s.x.empty() ? 0 : count[b] / double(s.x.size());
            h.x.push_back(lo + b * w); h.y.push_back(frac);
            h.x.push_back(lo + (b + 1) * w); h.y.push_back(frac);
        }
        hist.push_back(h);
    }
    const Frame f = frame_of(hist, true);
    std::ostringstream o;
    axes(o, f, title, xlabel, "fraction of pairs");
    for (const auto& h : hist) {
        o << "<polyline class=\"series\" data-name=\"" << esc(h.name) << "\" fill=\"" << h.color
          << "\" fill-opacity=\"0.3\" stroke=\"" << h.color << "\" points=\"" << num(f.px(h.x.front())) << "," << num(f.py(0));
        for (size_t i = 0; i < h.x.size(); ++i) o << " " << num(f.px(h.x[i])) << "," << num(f.py(h.y[i]));
        o << " " << num(f.px(h.x.back())) << "," << num(f.py(0)) << "\"/>\n";
    }
    o << "<line class=\"threshold\" data-value=\"" << num(threshold) << "\" x1=\"" << f.px(threshold) << "\" y1=\"" << kT
      << "\" x2=\"" << f.px(threshold) << "\" y2=\"" << kH - kB << "\" stroke=\"black\" stroke-dasharray=\"4 3\"/>";
    o << "<text x=\"" << f.px(threshold) + 4 << "\" y=\"" << kT + 12 << "\">threshold " << num(threshold) << "</text>\n";
    legend(o, hist);
    o << "</svg>\n";
    return o.str();
}

void write_run_report(const std::string& dir, const nlohmann::json& summary, const std::vector<float>& d,
                      const std::vector<float>& y) {
    // Loss per epoch.
    Series train{"train loss", "#1f77b4", {}, {}}, val{"validation loss", "#ff7f0e", {}, {}};
    for (const auto& e : summary.at("history")) {
        train.x.push_back(e.at("epoch").get<double>());
        train.y.push_back(e.at("loss").get<double>());
        val.x.push_back(e.at("epoch").get<double>());
        val.y.push_back(e.at("val_loss").get<double>());
    }
    const std::string loss_svg = svg_line_plot("Contrastive loss per epoch", "epoch", "loss", {train, val});
    // ROC: true-accept rate against false-accept rate, the EER point marked.
    Series roc{"ROC (test pairs)", "#2ca02c", {}, {}};
    const auto pts = roc_points(d, y);
    const double eer = equal_error_rate(d, y);
    Mark eer_mark{eer, 1 - eer, "EER " + num(eer)};
    // Bounded whatever the number of pairs: a point is drawn once the curve has moved 1/1000 of
    // the plot (L1) since the last one; the curve's L1 length is at most 2, so <= ~2,000 points.
    for (size_t i = 0; i < pts.size(); ++i) {
        const double x = pts[i].far, yv = 1 - pts[i].frr;
        const bool last = i + 1 == pts.size();
        if (!roc.x.empty() && !last && std::abs(x - roc.x.back()) + std::abs(yv - roc.y.back()) < 1e-3) continue;
        roc.x.push_back(x);
        roc.y.push_back(yv);
    }
    const std::string roc_svg = svg_line_plot("ROC, AUC " + num(roc_auc(d, y)), "false accept rate",
                                              "true accept rate", {roc}, {eer_mark});
    // DET: miss rate against false-accept rate on log axes, where the small-FAR operating points
    // every verifier is judged at are visible (same thinning as the ROC).
    Series det{"DET (test pairs)", "#9467bd", {}, {}};
    for (size_t i = 0; i < pts.size(); ++i) {
        const double x = pts[i].far, yv = pts[i].frr;
        if (x <= 0 || yv <= 0) continue;
        if (!det.x.empty() && i + 1 < pts.size() &&
            std::abs(std::log10(x) - std::log10(det.x.back())) + std::abs(std::log10(yv) - std::log10(det.y.back())) < 4e-3)
            continue;
        det.x.push_back(x);
        det.y.push_back(yv);
    }
    const std::string det_svg = svg_line_plot("DET (log axes)", "false accept rate", "miss rate (false reject)", {det},
                                              eer > 0 ? std::vector<Mark>{{eer, eer, "EER " + num(eer)}} : std::vector<Mark>{},
                                              true);
    Series gen{"genuine pairs", "#2ca02c", {}, {}}, imp{"impostor pairs", "#d62728", {}, {}};
    for (size_t i = 0; i < d.size(); ++i) (y[i] > 0.5f ? gen : imp).x.push_back(d[i]);
    const double thr = summary.at("threshold").get<double>();
    const std::string hist_svg = svg_histograms("Test distances", "distance", {gen, imp}, thr);
    write_file_atomic(dir + "/loss.svg", loss_svg);
    write_file_atomic(dir + "/roc.svg", roc_svg);
    write_file_atomic(dir + "/det.svg", det_svg);
    write_file_atomic(dir + "/distances.svg", hist_svg);

    std::ostringstream h;
    h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>siamese run report</title>\n"
      << "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
      << "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}</style>"
      << "</head><body>\n<h1>siamese run report</h1>\n<table id=\"summary\">\n";
    auto row = [&](const std::string& k, const nlohmann::json& v) {
        h << "<tr><th>" << esc(k) << "</th><td>" << esc(shown(v)) << "</td></tr>\n";
    };
    for (const char* k : {"command", "recipe_name", "protocol", "data", "device", "seed", "epochs", "batch", "optimizer",
                          "seconds_per_epoch", "train_pairs", "val_pairs", "test_pairs", "threshold"})
        if (summary.contains(k)) row(k, summary[k]);
    for (auto it = summary.at("test").begin(); it != summary.at("test").end(); ++it) row("test " + it.key(), it.value());
    if (summary.contains("identification"))
        for (auto it = summary["identification"].begin(); it != summary["identification"].end(); ++it)
            row("identification " + it.key(), it.value());
    if (summary.contains("baselines"))
        for (auto it = summary["baselines"].begin(); it != summary["baselines"].end(); ++it)
            for (auto f = it.value().begin(); f != it.value().end(); ++f) row("baseline " + it.key() + " " + f.key(), f.value());
    h << "</table>\n<p>tutorial_metric is the reference tutorial's \"accuracy\": the precision of the genuine decision "
         "at d &lt; 0.5, not accuracy.</p>\n<div class=\"plots\">\n"
      << loss_svg << roc_svg << det_svg << hist_svg << "</div>\n</body></html>\n";
    write_file_atomic(dir + "/report.html", h.str());
}

}  // namespace siamese
