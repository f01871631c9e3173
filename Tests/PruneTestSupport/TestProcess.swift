import Foundation

/// Runs a program from a test (prunec, the oracle's Python) and captures what it says.
public enum TestProcess {
    /// What a run left: its exit status and its output.
    public struct Result: Sendable {
        /// The exit status, or the signal number when ``signaled``.
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// The process died of a signal (a crash, or the kill after a timeout).
        public var signaled = false
        /// It ran past the timeout and was killed.
        public var timedOut = false
    }

    /// Runs `executable` with `arguments` in `directory` (default: the repository root); with a
    /// `timeout` in seconds, a process still running then is killed (SIGKILL) and reported as
    /// ``Result/timedOut``.
    public static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil, timeout: Double? = nil) throws -> Result {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.currentDirectoryURL = directory ?? TestPaths.repoRoot
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Both pipes are drained while the child runs, so a large output cannot fill one and block it.
        nonisolated(unsafe) var o = Data(), e = Data()
        let reading = DispatchGroup()
        DispatchQueue.global().async(group: reading) { o = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: reading) { e = err.fileHandleForReading.readDataToEndOfFile() }
        var timedOut = false
        if let timeout, reading.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
        }
        reading.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self),
                      signaled: p.terminationReason == .uncaughtSignal, timedOut: timedOut)
    }
}
