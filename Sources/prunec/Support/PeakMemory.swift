import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The process's peak resident set size, for memory regression tests (`--report-peak-rss`).
enum PeakMemory {
    /// Peak RSS in bytes so far.
    ///
    /// On Linux this is `VmHWM` from /proc/self/status, the high-water mark of this program's own
    /// address space. `getrusage`'s `ru_maxrss` would also count the parent's pages that a
    /// fork-then-exec child carried before exec (Linux keeps that maximum across exec), which
    /// inflates the figure when a large test runner starts prunec.
    static var bytes: Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        {
            return kb * 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }

    static func reportIfAsked(_ asked: Bool) {
        guard asked else { return }
        FileHandle.standardError.write(Data("peak-rss-bytes: \(bytes)\n".utf8))
    }
}
