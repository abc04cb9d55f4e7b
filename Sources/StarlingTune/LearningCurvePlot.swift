import Foundation

/// Draws the objective's metric per iteration, one line per trial, the best trial's line
/// highlighted, as a self-contained SVG file.
enum LearningCurvePlot {
    static func svg(_ trials: [TrialRecord], objective: Objective, title: String) -> String {
        let width = 800.0, height = 480.0
        let left = 70.0, right = 170.0, top = 40.0, bottom = 50.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let curves = trials.map { trial in
            (trial, trial.history.compactMap { result in result.metrics[objective.metric].flatMap { $0.isFinite ? (Double(result.iteration), $0) : nil } })
        }.filter { !$0.1.isEmpty }
        let points = curves.flatMap(\.1)
        let maxX = max(1, points.map(\.0).max() ?? 1)
        var minY = points.map(\.1).min() ?? 0, maxY = points.map(\.1).max() ?? 1
        if maxY - minY < 1e-12 { minY -= 0.5; maxY += 0.5 }
        func x(_ value: Double) -> Double { left + (maxX <= 1 ? 0.5 : (value - 1) / (maxX - 1)) * plotWidth }
        func y(_ value: Double) -> Double { top + (1 - (value - minY) / (maxY - minY)) * plotHeight }
        let best = ProgressTable.best(trials, objective)

        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <title>\(escape(title))</title>
        <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="white"/>
        <text x="\(left)" y="24" font-size="15">\(escape(title)): \(escape(objective.metric)) per iteration (\(objective.mode.rawValue) is better)</text>

        """
        // Axes, with five ticks on each.
        svg += "<g stroke=\"#444\" fill=\"none\"><line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(left + plotWidth)\" y2=\"\(top + plotHeight)\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotHeight)\"/></g>\n"
        for tick in 0...4 {
            let fraction = Double(tick) / 4
            let yValue = minY + (maxY - minY) * fraction
            let xValue = 1 + (maxX - 1) * fraction
            svg += "<text x=\"\(left - 8)\" y=\(quote(y(yValue) + 4)) text-anchor=\"end\">\(ProgressTable.number(yValue))</text>\n"
            svg += "<line x1=\"\(left)\" y1=\(quote(y(yValue))) x2=\"\(left + plotWidth)\" y2=\(quote(y(yValue))) stroke=\"#eee\"/>\n"
            svg += "<text x=\(quote(x(xValue))) y=\"\(top + plotHeight + 18)\" text-anchor=\"middle\">\(Int(xValue.rounded()))</text>\n"
        }
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">training iteration</text>\n"
        for (trial, curve) in curves where trial.id != best?.id {
            svg += polyline(curve, x: x, y: y, colour: "#9aa7b8", width: 1, opacity: 0.7, label: trial.name)
        }
        if let best, let curve = curves.first(where: { $0.0.id == best.id })?.1 {
            svg += polyline(curve, x: x, y: y, colour: "#d62728", width: 2.5, opacity: 1, label: "\(best.name) (best)")
            svg += "<text x=\"\(left + plotWidth + 10)\" y=\"\(top + 12)\" fill=\"#d62728\">best: \(escape(best.name))</text>\n"
            for (index, parameter) in best.config.flattened.prefix(8).enumerated() {
                svg += "<text x=\"\(left + plotWidth + 10)\" y=\"\(top + 30 + Double(index) * 16)\">\(escape(parameter.path)) = \(escape(parameter.value.description))</text>\n"
            }
        }
        svg += "<text x=\"\(left + plotWidth + 10)\" y=\"\(top + plotHeight)\" fill=\"#666\">\(curves.count) trials</text>\n"
        svg += "</svg>\n"
        return svg
    }

    private static func polyline(_ curve: [(Double, Double)], x: (Double) -> Double, y: (Double) -> Double,
                                 colour: String, width: Double, opacity: Double, label: String) -> String {
        let points = curve.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
        return "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"\(width)\" stroke-opacity=\"\(opacity)\" points=\"\(points)\"><title>\(escape(label))</title></polyline>\n"
    }

    private static func quote(_ value: Double) -> String { String(format: "\"%.1f\"", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
