import ArgumentParser
import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// prunec's exit codes (sysexits.h where one fits).
enum PrunecExit {
    static let badInput: Int32 = 65
    static let internalError: Int32 = 70
}

/// Runs a command body, turning library errors into one-line messages on stderr and exit codes.
///
/// Usage errors stay `ValidationError`s (argument-parser prints usage for them), and so do inputs
/// that cannot be synthesized (`SampleInputsError`: bind a shape or give data); bad models and
/// data (including tensor data files, inputs the interpreter rejects and models whose outputs
/// cannot be compared) exit 65; anything unexpected exits 70.
/// A pass that failed is reported with `file`, the model it ran on.
func reportingErrors(file: String? = nil, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let f as PassFailure {
        Diagnostics.error("\(file.map { "\($0): " } ?? "")\(f)")
        throw ExitCode(PrunecExit.badInput)
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch let e as SampleInputsError {
        // Fixed by the command line (--shape, --inputs), so it is a usage error.
        throw ValidationError("\(e)")
    } catch let e where e is ONNXImportError || e is IRError || e is ONNXExportError || e is RuntimeError || e is TensorDataError
        || e is DriftError
        || e is AtomicFileError || e is CheckError || e is PruningError || e is ModelRunError || e is SweepError
    {
        Diagnostics.error("\(e)")
        throw ExitCode(PrunecExit.badInput)
    } catch {
        Diagnostics.error("internal error: \(error)")
        throw ExitCode(PrunecExit.internalError)
    }
}

/// Messages on stderr; results go to stdout.
enum Diagnostics {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }
}
