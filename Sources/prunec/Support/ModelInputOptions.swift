import ArgumentParser
import Foundation
import PruneIR
import PruneKit

/// The model argument shared by subcommands that read one model.
struct ModelInputOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The ONNX model to read.", valueName: "model"))
    var model: String

    @Flag(name: .customLong("report-peak-rss"), help: .hidden)
    var reportPeakRSS = false

    var url: URL { URL(fileURLWithPath: model) }

    /// Loads the model and verifies its IR.
    func load() throws -> Model {
        try ModelFile.load(model)
    }
}

/// Export settings shared by subcommands that write a model.
struct ModelOutputOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Where to write the result.", valueName: "file"))
    var output: String?

    @Option(
        name: .customLong("external-data"),
        help: ArgumentHelp(
            "Where weights go: 'auto' keeps external data as imported (and switches to external data past 2 GB), 'none' writes everything inline, 'always' writes every initializer of 1 KiB or more to the data file.",
            valueName: "auto|none|always"))
    var externalData: ExternalDataChoice = .auto

    @Option(name: .customLong("data-file"), help: ArgumentHelp("Name of the external data file next to the output (default: <output>.data).", valueName: "name"))
    var dataFile: String?

    var exportOptions: ExportOptions {
        switch externalData {
        case .auto: return ExportOptions(externalData: .asImported, dataFileName: dataFile)
        case .none: return ExportOptions(externalData: .none, dataFileName: dataFile)
        case .always: return ExportOptions(externalData: .all(threshold: 1024), dataFileName: dataFile)
        }
    }

    func validate() throws {
        if let dataFile, dataFile.contains("/") || dataFile == ".." || dataFile.isEmpty {
            throw ValidationError("--data-file must be a plain file name, not a path: '\(dataFile)'")
        }
    }
}

enum ExternalDataChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, none, always
}
