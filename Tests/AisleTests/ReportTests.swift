import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// `aislectl report` on the Online Retail store: the figures add up and the page is well formed.
@Suite struct ReportTests {
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func storeReportOnOnlineRetail() throws {
        let store = try TestSupport.onlineRetailStore.get()
        let page = try TestSupport.temporaryDirectory().appendingPathComponent("report.html")
        // Started with sudo's usual umask (022): what it writes is still for the agent's user and group.
        let aislectl = TestSupport.productsDirectory.appendingPathComponent("aislectl").path
        let r = try TestSupport.runExternal("/bin/sh", ["-c", #"umask 022 && exec "$0" "$@""#, aislectl, "report", "--store", store.path, "--since", "2011-09-01", "--html", page.path, "--json"])
        #expect(r.status == 0, "\(r.err)")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: page.path)[.posixPermissions] as? Int)
        #expect(mode & 0o027 == 0, "report.html mode \(String(mode, radix: 8))")
        struct Report: Decodable {
            struct Rule: Decodable { var antecedents: [String]; var consequents: [String]; var baskets: Int; var confidence: Double; var lift: Double }
            struct Series: Decodable { var name: String; var values: [Double] }
            var customers: Int; var segments: [String: Int]; var movement: [String: [String: Int]]; var churn_risk: [Int]
            var rules: [Rule]; var sales_months: [String]; var sales: [Series]; var sales_grouping: String
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(r.out.utf8))
        #expect(report.customers > 4000 && report.segments.values.reduce(0, +) == report.customers)
        #expect(report.movement.values.flatMap(\.values).reduce(0, +) == report.customers)
        #expect(report.churn_risk.count == 10 && report.churn_risk.reduce(0, +) == report.customers)
        #expect(report.rules.count == 10 && report.rules.allSatisfy { $0.confidence >= 0.3 && $0.lift > 1 && !$0.antecedents.isEmpty })
        // By theme once themes are trained (another test may have), else the store as one line.
        #expect(report.sales_months.count >= 12 && report.sales.count == (report.sales_grouping == "theme" ? 6 : 1), "\(report.sales_grouping)")
        #expect(report.sales.allSatisfy { $0.values.count == report.sales_months.count })
        // A self-contained page: every section, charts as inline SVG that parse as XML, nothing fetched.
        let html = try String(contentsOf: page, encoding: .utf8)
        for section in ["Segments", "Churn risk", "Bought together", "Review sentiment", "Sales by"] { #expect(html.contains("<h2>\(section)")) }
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href="))
        var rest = html[...], charts = 0
        while let start = rest.range(of: "<svg "), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            let svg = rest[start.lowerBound..<end.upperBound]
            #expect(XMLParser(data: Data(svg.utf8)).parse(), "an SVG chart is not well-formed XML")
            charts += 1
            rest = rest[end.upperBound...]
        }
        #expect(charts >= 3)
    }
}
