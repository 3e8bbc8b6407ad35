import AisleCore
import Foundation

/// Why a tensor file was refused.
public struct TensorFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// A read-only, memory-mapped safetensors file: an 8-byte little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets}}`, then the tensors' bytes. Everything the header
/// says is checked against the file before any tensor is handed out: sizes, shapes, bounds,
/// overlap and alignment. The mapping lives as long as the value; it is read-only and never
/// changes after `init`, which is why sharing it across threads is safe.
public final class SafeTensors: @unchecked Sendable {
    /// One tensor's description.
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        /// Byte range within the data section.
        public var range: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer
    private let length: Int
    private let dataStart: Int

    static let elementSize: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "F64": 8]

    /// Maps and validates the file at `path`. The mapping is read-only; it still reflects later
    /// writes to the file, so a model that must outlive changes to its file copies what it needs
    /// at load time (``BertInt8`` does) and lets this go.
    public init(path: String) throws {
        self.path = path
        func fail(_ reason: String) -> TensorFileError { TensorFileError(path: path, reason: reason) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw fail(String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail(String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size >= 8 else { throw fail("truncated: \(size) bytes, not even a header length") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw fail("cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(map)
        length = size
        do {
            let declared = base.loadUnaligned(as: UInt64.self).littleEndian
            guard declared > 1, declared <= UInt64(size - 8) else {
                throw fail("header length \(declared) does not fit in a file of \(size) bytes (truncated?)")
            }
            let headerLength = Int(declared)
            dataStart = 8 + headerLength
            let bytes = UnsafeBufferPointer(start: base.advanced(by: 8).assumingMemoryBound(to: UInt8.self), count: headerLength)
            guard case .object(let fields) = try Self.parseHeader(bytes, fail: fail) else { throw fail("header is not a JSON object") }
            var entries: [String: Entry] = [:]
            var metadata: [String: String] = [:]
            for (name, value) in fields {
                if name == "__metadata__" {
                    if case .object(let m) = value {
                        for (k, v) in m { if case .string(let s) = v { metadata[k] = s } }
                    }
                    continue
                }
                entries[name] = try Self.entry(name, value, dataLength: size - dataStart, fail: fail)
            }
            var end = 0
            // Ordered by start, then end: an empty tensor may start where the next one does.
            for (name, e) in entries.sorted(by: { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }) {
                guard e.range.lowerBound >= end else { throw fail("tensor \(name) overlaps the one before it") }
                guard (dataStart + e.range.lowerBound) % (Self.elementSize[e.dtype] ?? 1) == 0 || e.range.isEmpty else {
                    throw fail("tensor \(name) is not aligned to its element size")
                }
                end = e.range.upperBound
            }
            self.entries = entries
            self.metadata = metadata
        } catch {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    private static func parseHeader(_ bytes: UnsafeBufferPointer<UInt8>, fail: (String) -> TensorFileError) throws -> JSONValue {
        let parsed = Result { () throws(JSONSyntaxError) in try JSONParser.parse(bytes) }
        switch parsed {
        case .success(let v): return v
        case .failure(let e): throw fail("header: \(e.description)")
        }
    }

    private static func entry(_ name: String, _ value: JSONValue, dataLength: Int, fail: (String) -> TensorFileError) throws -> Entry {
        guard case .object(let o) = value, case .string(let dtype)? = o["dtype"], case .array(let shapeValues)? = o["shape"],
            case .array(let offsets)? = o["data_offsets"], offsets.count == 2,
            case .int(let begin) = offsets[0], case .int(let end) = offsets[1]
        else { throw fail("tensor \(name): needs dtype, shape and two data_offsets") }
        guard let width = elementSize[dtype] else { throw fail("tensor \(name): unknown dtype \(dtype)") }
        var shape: [Int] = []
        var bytes: Int? = width  // nil once the shape's size passes Int
        for v in shapeValues {
            guard case .int(let d) = v, d >= 0, d < 1 << 32 else { throw fail("tensor \(name): bad shape") }
            shape.append(Int(d))
            bytes = bytes.flatMap { let (b, over) = $0.multipliedReportingOverflow(by: Int(d)); return over ? nil : b }
        }
        guard begin >= 0, end >= begin, end <= dataLength else {
            throw fail("tensor \(name): bytes \(begin)..<\(end) lie outside the \(dataLength)-byte data section (truncated?)")
        }
        guard let bytes, Int(end - begin) == bytes else {
            throw fail("tensor \(name): shape \(shape) of \(dtype) needs \(bytes.map(String.init) ?? "more than Int.max") bytes, the offsets give \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, range: Int(begin)..<Int(end))
    }

    /// The float32 tensor `name`, checked to have `shape`.
    public func float32(_ name: String, shape: [Int]) throws -> UnsafeBufferPointer<Float> {
        try tensor(name, dtype: "F32", shape: shape)
    }

    /// The int8 tensor `name`, checked to have `shape`.
    public func int8(_ name: String, shape: [Int]) throws -> UnsafeBufferPointer<Int8> {
        try tensor(name, dtype: "I8", shape: shape)
    }

    private func tensor<T>(_ name: String, dtype: String, shape: [Int]) throws -> UnsafeBufferPointer<T> {
        guard let e = entries[name] else { throw TensorFileError(path: path, reason: "no tensor \(name)") }
        guard e.dtype == dtype else { throw TensorFileError(path: path, reason: "tensor \(name) is \(e.dtype), expected \(dtype)") }
        guard e.shape == shape else { throw TensorFileError(path: path, reason: "tensor \(name) has shape \(e.shape), expected \(shape)") }
        let start = base.advanced(by: dataStart + e.range.lowerBound).assumingMemoryBound(to: T.self)
        return UnsafeBufferPointer(start: start, count: e.range.count / MemoryLayout<T>.stride)
    }

    /// The raw bytes of the whole file (for hashing).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }

    /// The bytes after the header: every tensor's data.
    public var dataSection: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + dataStart, count: length - dataStart) }

    /// Writes a safetensors file: the header padded with spaces to 8 bytes, then the tensors in
    /// the order given, whole or not at all (``DurableFile``): the new file is passed to `check`
    /// (which throws to keep the file already at `url`) before it replaces anything — a reader
    /// never sees half a file, and a power cut keeps the old file or the new one.
    public static func write(
        _ tensors: [(name: String, dtype: String, shape: [Int], data: Data)], metadata: [String: String], to url: URL, check: (URL) throws -> Void = { _ in }
    ) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.count]]
            offset += t.data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { out.append(t.data) }
        // Weights are public: readable by the agent's user whoever wrote them (aislectl's umask
        // keeps other files from others).
        try DurableFile.write(out, to: url.path, mode: 0o644) { try check(URL(fileURLWithPath: $0)) }
    }
}
