// Pictures of a training run: SVG plots (loss per epoch, ROC with its EER point, histograms of
// genuine and impostor distances with the threshold) and one self-contained report.html.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace siamese {

struct Series {
    std::string name, color;
    std::vector<double> x, y;
};

// A line plot with axes, round ticks and a legend; `marks` are labelled points drawn on top.
// log_axes: both axes log10 over whole decades, ticks at the decades (DET curves).
struct Mark {
    double x, y;
    std::string label;
};
std::string svg_line_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                          const std::vector<Series>& series, const std::vector<Mark>& marks = {}, bool log_axes = false);
// Overlaid histograms (same bins) with a vertical line at `threshold`.
std::string svg_histograms(const std::string& title, const std::string& xlabel, const std::vector<Series>& samples,
                           double threshold, int bins = 40);

// Writes loss.svg, roc.svg, det.svg, distances.svg and report.html into `dir` from the run's
// summary (summary.json's object), the test distances and labels.
void write_run_report(const std::string& dir, const nlohmann::json& summary, const std::vector<float>& test_distances,
                      const std::vector<float>& test_labels);

}  // namespace siamese
