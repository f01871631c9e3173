import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The process's peak resident set size, for memory regression tests (`--report-peak-rss`).
enum PeakMemory {
    /// Peak RSS in bytes so far.
    static var bytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }

    static func reportIfAsked(_ asked: Bool) {
        guard asked else { return }
        FileHandle.standardError.write(Data("peak-rss-bytes: \(bytes)\n".utf8))
    }
}
