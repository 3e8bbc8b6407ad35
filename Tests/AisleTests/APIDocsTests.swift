import Foundation
import Testing

@Suite struct APIDocsTests {
    static let spec = TestSupport.repository.appendingPathComponent("docs/api/openapi.yaml")

    /// `make test` installs the validator into the project's venv (tools/install-deps).
    static let python = TestSupport.repository.appendingPathComponent("tools/.venv/bin/python").path

    @Test func openAPIFileIsValid() throws {
        let r = try TestSupport.runExternal(Self.python, [
            "-c",
            "import sys; from openapi_spec_validator import validate; from openapi_spec_validator.readers import read_from_filename; validate(read_from_filename(sys.argv[1])[0]); print('valid')",
            Self.spec.path,
        ])
        #expect(r.status == 0 && r.out.contains("valid"), "\(r.err)")
    }

    /// Every route the agent registers (read from its source) has its path in the spec.
    @Test func everyEndpointIsDocumented() throws {
        let text = try String(contentsOf: Self.spec, encoding: .utf8)
        let routes = try String(contentsOf: TestSupport.repository.appendingPathComponent("Sources/AisleServe/AgentRoutes.swift"), encoding: .utf8)
        let paths = routes.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: #"router\.(get|post)\("([^"]+)"\)"#, options: .regularExpression) else { return nil }
            let quoted = line[r].split(separator: "\"")[1]
            return "/" + quoted.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
        }
        #expect(paths.count >= 10 && paths.contains("/v1/sessions/{key}/intent"))
        for path in paths { #expect(text.contains("\n  \(path):"), "\(path) is not in openapi.yaml") }
    }
}
