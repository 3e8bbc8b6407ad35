import CZlib
import Foundation

/// Errors opening or reading an input file.
public struct InputFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Reads a file line by line in constant memory; gzip files (`.gz`, or any file starting with
/// the gzip magic) are decompressed on the fly.
public final class LineReader {
    private let file: gzFile
    public let path: String
    /// Size of the file on disk, for progress.
    public let fileSize: Int64
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    /// 1-based number of the line last returned.
    public private(set) var lineNumber = 0

    public init(path: String) throws {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw InputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw InputFileError(path: path, reason: "not a regular file") }
        fileSize = Int64(info.st_size)
        guard let f = gzopen(path, "rb") else {
            throw InputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        gzbuffer(f, 1 << 17)
        file = f
        buffer = [UInt8](repeating: 0, count: 1 << 18)
    }

    deinit { gzclose(file) }

    /// Compressed bytes consumed so far (equals uncompressed bytes for a plain file).
    public var bytesRead: Int64 { Int64(gzoffset(file)) }

    /// Calls `body` with the next line (without its `\n` or `\r\n`); returns false at the end.
    /// The bytes are valid only during the call.
    public func next<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) throws -> R? {
        while true {
            if let nl = buffer[start..<end].firstIndex(of: 10) {
                let lineStart = start
                start = nl + 1
                lineNumber += 1
                var lineEnd = nl
                if lineEnd > lineStart, buffer[lineEnd - 1] == 13 { lineEnd -= 1 }
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
            if eof {
                guard start < end else { return nil }
                let lineStart = start
                start = end
                lineNumber += 1
                var lineEnd = end
                if buffer[lineEnd - 1] == 13 { lineEnd -= 1 }
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
            try fill()
        }
    }

    private func fill() throws {
        if start > 0 {
            let n = end - start
            buffer.withUnsafeMutableBufferPointer { p in
                if n > 0 { _ = memmove(p.baseAddress!, p.baseAddress! + start, n) }
            }
            start = 0
            end = n
        }
        if end == buffer.count {
            guard buffer.count < 64 << 20 else {
                throw InputFileError(path: path, reason: "line \(lineNumber + 1) is longer than 64 MiB")
            }
            buffer.append(contentsOf: repeatElement(0, count: buffer.count))
        }
        let want = buffer.count - end
        let got = buffer.withUnsafeMutableBufferPointer { p in gzread(file, p.baseAddress! + end, UInt32(want)) }
        if got < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
            throw InputFileError(path: path, reason: "\(message) after line \(lineNumber)")
        }
        if got == 0 {
            var code: Int32 = 0
            _ = gzerror(file, &code)
            if code != Z_OK && code != Z_STREAM_END {
                throw InputFileError(path: path, reason: "truncated or corrupt gzip data after line \(lineNumber)")
            }
            eof = true
        }
        end += Int(got)
    }
}
