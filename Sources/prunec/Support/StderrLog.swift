import Foundation
import Logging

/// Pass logs on stderr as plain lines (`prunec: magnitude{sparsity=0.3}: 0.07 s, ...`), without
/// swift-log's timestamps: they are progress for people, and stdout stays the result.
struct StderrLog: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let prefix: String
        switch event.level {
        case .trace, .debug: prefix = "prunec: debug: "
        case .info, .notice: prefix = "prunec: "
        case .warning: prefix = "warning: "
        case .error, .critical: prefix = "error: "
        }
        FileHandle.standardError.write(Data("\(prefix)\(event.message)\n".utf8))
    }

    /// A logger at `.debug` when verbose, else `.info`.
    static func logger(verbose: Bool) -> Logger {
        var l = Logger(label: "prunec") { _ in StderrLog() }
        l.logLevel = verbose ? .debug : .info
        return l
    }
}
