import Foundation
import Testing

@Suite struct APIDocsTests {
    static let spec = TestSupport.repository.appendingPathComponent("docs/api/openapi.yaml")

    @Test func openAPIFileIsValid() throws {
        let r = try TestSupport.runExternal("/usr/bin/env", [
            "python3", "-c",
            "import sys; from openapi_spec_validator import validate; from openapi_spec_validator.readers import read_from_filename; validate(read_from_filename(sys.argv[1])[0]); print('valid')",
            Self.spec.path,
        ])
        #expect(r.status == 0 && r.out.contains("valid"), "\(r.err)")
    }

    @Test func everyEndpointIsDocumented() throws {
        let text = try String(contentsOf: Self.spec, encoding: .utf8)
        for path in ["/v1/health", "/v1/status", "/v1/events", "/v1/customers/{id}/history", "/v1/items/top", "/metrics"] {
            #expect(text.contains("\n  \(path):"), "\(path) is not in openapi.yaml")
        }
    }
}
