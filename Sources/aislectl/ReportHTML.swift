import AisleInsight
import AisleModels
import Foundation

/// A ``StoreReport`` as one self-contained HTML page: charts are inline SVG, no scripts, no
/// external files, so it opens anywhere and can be mailed.
enum ReportHTML {
    static let palette = ["#1b6ca8", "#e07a1f", "#2e8b57", "#b03a48", "#6a4c93", "#8c8c2a", "#7f7f7f"]

    static func render(_ r: StoreReport, store: String) -> String {
        let order = RFM.Segment.allCases.map(\.rawValue)
        let totalRisk = max(1, r.churnRisk.reduce(0, +))
        let highRisk = r.churnRisk.suffix(5).reduce(0, +)
        var html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Aisle store report — \(escape(store))</title>
            <style>
            body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}
            h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
            .kpi{display:inline-block;margin:0 2em 1em 0} .kpi b{display:block;font-size:1.6em}
            table{border-collapse:collapse;font-size:.9em} td,th{padding:.25em .5em;text-align:right} th{text-align:left}
            .note{color:#666;font-size:.9em} svg text{font:12px system-ui,sans-serif;fill:#333}
            </style></head><body>
            <h1>Store report</h1><p class="note">\(escape(store)) · as of \(r.asOf) · movement since \(r.since) · made by aislectl</p>
            <div class="kpi"><b>\(r.customers.formatted())</b>customers</div>
            <div class="kpi"><b>\(r.receiptsLast30Days.formatted())</b>receipts, last 30 days</div>
            <div class="kpi"><b>\(Int(r.revenueLast30Days.rounded()).formatted())</b>revenue, last 30 days</div>
            <div class="kpi"><b>\(String(format: "%.0f%%", 100 * Double(highRisk) / Double(totalRisk)))</b>customers at churn risk ≥ 50 %</div>

            <h2>Segments</h2>
            <p class="note">RFM segments (docs/MODELS.md): now and at \(r.since).</p>
            \(groupedBars(labels: order, series: [("then", order.map { Double(r.segmentsSince[$0] ?? 0) }), ("now", order.map { Double(r.segments[$0] ?? 0) })]))
            <p class="note">Movement: rows are the segment at \(r.since) (none: not yet a customer), columns now.</p>
            \(movementTable(r.movement, order: order))

            <h2>Churn risk</h2>
            <p class="note">Customers by probability of no purchase in the churn horizon (\(escape(r.churnModel))).</p>
            \(bars(labels: (0..<10).map { String(format: "%.1f–%.1f", Double($0) / 10, Double($0 + 1) / 10) }, values: r.churnRisk.map(Double.init), highlightFrom: 5))

            <h2>Bought together</h2>
            \(rulesTable(r.rules))

            <h2>Review sentiment</h2>
            """
        if r.sentimentMonths.isEmpty {
            html += "<p class=\"note\">No scored reviews yet.</p>"
        } else {
            html += "<p class=\"note\">Mean P(positive) of the month's reviews (\(r.sentimentReviews.reduce(0, +).formatted()) reviews).</p>"
            html += lines(x: r.sentimentMonths, series: [("sentiment", r.sentiment)], range: 0...1)
        }
        html += "<h2>Sales by \(r.salesGrouping)</h2><p class=\"note\">Net revenue per month (returns deducted) of the six largest, "
            + String(format: "%.0f %% of the year's.</p>", 100 * r.salesShown)
        html += r.salesMonths.isEmpty ? "<p class=\"note\">No sales in the year.</p>" : lines(x: r.salesMonths, series: r.sales.map { ($0.name, $0.values) }, range: nil)
        return html + "</body></html>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double) -> String { v >= 10_000 ? String(format: "%.0fk", v / 1000) : String(format: v >= 100 || v == v.rounded() ? "%.0f" : "%.2f", v) }

    /// Vertical bars, one per label; bars from `highlightFrom` on in the warning colour.
    static func bars(labels: [String], values: [Double], highlightFrom: Int = .max) -> String {
        groupedBars(labels: labels, series: [("", values)], highlightFrom: highlightFrom)
    }

    /// Bars per label, one per series side by side, with a legend when there are several.
    static func groupedBars(labels: [String], series: [(name: String, values: [Double])], highlightFrom: Int = .max) -> String {
        let width = 900.0, height = 240.0, left = 50.0, bottom = 40.0
        let top = max(1, series.flatMap(\.values).max() ?? 1)
        let slot = (width - left) / Double(max(1, labels.count)), bar = slot * 0.8 / Double(max(1, series.count))
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height + 20))\" width=\"100%\" role=\"img\">"
        svg += axis(width: width, height: height, left: left, bottom: bottom, top: top)
        for (i, label) in labels.enumerated() {
            let x0 = left + Double(i) * slot + slot * 0.1
            for (s, serie) in series.enumerated() {
                let v = serie.values[i], h = (height - bottom - 10) * v / top
                let colour = i >= highlightFrom ? "#b03a48" : palette[s % palette.count]
                svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@ %@: %@</title></rect>",
                              x0 + Double(s) * bar, height - bottom - h, bar - 1, h, colour, escape(label), escape(serie.name), number(v))
            }
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", x0 + slot * 0.4, height - bottom + 16, escape(label))
        }
        return svg + legend(series.count > 1 ? series.map(\.name) : [], y: height + 14) + "</svg>"
    }

    /// A line per series over the x labels; `range` fixes the y axis (else 0 to the maximum).
    static func lines(x: [String], series: [(name: String, values: [Double])], range: ClosedRange<Double>?) -> String {
        let width = 900.0, height = 260.0, left = 50.0, bottom = 40.0
        let low = range?.lowerBound ?? 0, high = range?.upperBound ?? max(1, series.flatMap(\.values).max() ?? 1)
        let step = (width - left - 20) / Double(max(1, x.count - 1))
        func y(_ v: Double) -> Double { height - bottom - (height - bottom - 10) * (v - low) / (high - low) }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height + 20 + 16 * Double((series.count + 3) / 4)))\" width=\"100%\" role=\"img\">"
        svg += axis(width: width, height: height, left: left, bottom: bottom, top: high, bottomValue: low)
        for (i, label) in x.enumerated() where x.count <= 13 || i % 2 == 0 {
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", left + Double(i) * step, height - bottom + 16, escape(label))
        }
        for (s, serie) in series.enumerated() {
            let points = serie.values.enumerated().map { String(format: "%.1f,%.1f", left + Double($0.offset) * step, y($0.element)) }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(palette[s % palette.count])\" stroke-width=\"2\" points=\"\(points)\"><title>\(escape(serie.name))</title></polyline>"
            // A marker at each point: a line through one month alone draws nothing.
            for (i, v) in serie.values.enumerated() {
                svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", left + Double(i) * step, y(v), palette[s % palette.count])
            }
        }
        return svg + legend(series.count > 1 ? series.map(\.name) : [], y: height + 14) + "</svg>"
    }

    static func axis(width: Double, height: Double, left: Double, bottom: Double, top: Double, bottomValue: Double = 0) -> String {
        var svg = String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#999\"/>", left, height - bottom, width, height - bottom)
        for k in 0...4 {
            let v = bottomValue + (top - bottomValue) * Double(k) / 4, yy = height - bottom - (height - bottom - 10) * Double(k) / 4
            svg += String(format: "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%@</text>",
                          left, yy, width, yy, left - 6, yy + 4, number(v))
        }
        return svg
    }

    static func legend(_ names: [String], y: Double) -> String {
        names.enumerated().map { i, name in
            let x = 50 + Double(i % 4) * 215, yy = y + Double(i / 4) * 16
            return String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%@\"/><text x=\"%.0f\" y=\"%.0f\">%@</text>",
                          x, yy - 9, palette[i % palette.count], x + 14, yy, escape(String(name.prefix(30))))
        }.joined()
    }

    static func movementTable(_ movement: [String: [String: Int]], order: [String]) -> String {
        let peak = Double(max(1, movement.values.flatMap(\.values).max() ?? 1))
        var t = "<table><tr><th>then \\ now</th>" + order.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
        for from in ["none"] + order {
            t += "<tr><th>\(escape(from))</th>"
            for to in order {
                let n = movement[from]?[to] ?? 0
                t += String(format: "<td style=\"background:rgba(27,108,168,%.2f)\">%d</td>", 0.08 + 0.6 * Double(n) / peak, n)
            }
            t += "</tr>"
        }
        return t + "</table>"
    }

    static func rulesTable(_ rules: [StoreReport.Rule]) -> String {
        guard !rules.isEmpty else { return "<p class=\"note\">No rule reaches 1 % of the year's baskets.</p>" }
        var t = "<p class=\"note\">The strongest rules over the year's receipts (support ≥ 1 %, confidence ≥ 30 %), by lift.</p>"
        t += "<table><tr><th>customers who buy</th><th>also buy</th><th>baskets</th><th>confidence</th><th>lift</th></tr>"
        for r in rules {
            t += "<tr><th>\(escape(r.antecedents.joined(separator: " + ")))</th><th>\(escape(r.consequents.joined(separator: " + ")))</th>"
            t += String(format: "<td>%d</td><td>%.0f %%</td><td>%.1f</td></tr>", r.baskets, 100 * r.confidence, r.lift)
        }
        return t + "</table>"
    }
}
