#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why a plugin library was refused. Nothing of a refused plugin is registered.
public enum PluginError: Error, Equatable, CustomStringConvertible {
    /// The file does not exist or is not a dynamic library this process can load (`dlerror`'s text).
    case notALibrary(path: String, reason: String)
    /// The library does not export `prunec_plugin_register`.
    case missingEntryPoint(path: String, reason: String)
    /// The library was built against another PruneKit API version.
    case versionMismatch(path: String, plugin: Int32, host: Int32)
    /// The library carries its own copy of PruneKit instead of using prunec's.
    case separateCopy(path: String)
    /// A pass name the registry already has; `existing` says who registered it (prunec, another
    /// plugin, or the same one loaded twice).
    case duplicatePass(name: String, path: String, existing: String)

    /// Whether the command line is at fault (a path that is no library: exit 64) rather than the
    /// library's contents (exit 65).
    public var isUsageError: Bool {
        if case .notALibrary = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .notALibrary(let path, let reason):
            return "plugin '\(path)' is not a loadable dynamic library: \(reason)"
        case .missingEntryPoint(let path, let reason):
            return "plugin '\(path)' does not export \(PruneKitAPI.entryPoint) (is it a prunec plugin?): \(reason)"
        case .versionMismatch(let path, let plugin, let host):
            return "plugin '\(path)' was built for PruneKit API version \(plugin), this prunec has version \(host): rebuild the plugin against this prunec"
        case .separateCopy(let path):
            return "plugin '\(path)' runs its own copy of PruneKit, not prunec's: load it into a prunec that exports its symbols (see docs/WRITING_PASSES.md)"
        case .duplicatePass(let name, let path, let existing):
            return "plugin '\(path)' registers pass '\(name)', which \(existing) already registers"
        }
    }
}

/// Loads plugin libraries into a ``PassRegistry``.
///
/// `dlopen`s the library (`RTLD_NOW`, so an unresolved symbol is an error here and not in the
/// middle of a pass), finds `prunec_plugin_register`, calls it with a ``PluginRegistrar`` handle,
/// checks the API version and that the plugin used this process's PruneKit, checks every pass
/// name against the registry, and only then adds the passes, with the library's path as their
/// ``PassRegistry/Entry/origin``. Libraries stay loaded for the life of the process, refused ones
/// too (a Swift library cannot be unloaded safely).
public enum PluginLoader {
    /// The paths in a `PRUNEC_PLUGIN_PATH`-style list: colon-separated, empty items skipped.
    public static func paths(fromEnvironmentValue value: String?) -> [String] {
        (value ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    /// Loads the plugin at `path` and adds its passes to `registry`.
    ///
    /// - Returns: The names of the passes the plugin added.
    /// - Throws: ``PluginError``; `registry` is unchanged when it throws.
    @discardableResult
    public static func load(_ path: String, into registry: inout PassRegistry) throws -> [String] {
        // An absolute path, so dlopen never searches LD_LIBRARY_PATH for a bare file name.
        let file = URL(fileURLWithPath: path).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: file) else {
            throw PluginError.notALibrary(path: path, reason: "no such file")
        }
        // A library is never unloaded, refused or not: loading a Swift library registers its
        // type metadata and protocol conformances with the Swift runtime, which keeps pointers
        // into them; after dlclose the next conformance lookup (any generic call) reads freed
        // memory. That is how a wrong library (libPruneKitDynamic.so itself) used to crash.
        // RTLD_NODELETE keeps it mapped even if a dlclose comes from elsewhere.
        guard let library = dlopen(file, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            throw PluginError.notALibrary(path: path, reason: lastError())
        }
        _ = dlerror()
        guard let symbol = dlsym(library, PruneKitAPI.entryPoint) else {
            throw PluginError.missingEntryPoint(path: path, reason: lastError())
        }
        typealias Entry = @convention(c) (UnsafeMutableRawPointer?) -> Int32
        let entry = unsafeBitCast(symbol, to: Entry.self)

        let registrar = PluginRegistrar(origin: path)
        let host = PruneKitAPI.version
        let hostIdentity = UInt(bitPattern: ObjectIdentifier(PassRegistry.self))
        var words: [UInt] = [UInt(UInt32(bitPattern: host)), UInt(bitPattern: Unmanaged.passUnretained(registrar).toOpaque()),
                             hostIdentity, 0]
        let version = withExtendedLifetime(registrar) { words.withUnsafeMutableBytes { entry($0.baseAddress) } }
        guard version == host else {
            throw PluginError.versionMismatch(path: path, plugin: version, host: host)
        }
        guard words[3] == hostIdentity else { throw PluginError.separateCopy(path: path) }
        for e in registrar.registry.all {
            if let existing = registry.entry(e.name) {
                let by = existing.origin.map { $0 == path ? "the same plugin (loaded twice?)" : "plugin '\($0)'" }
                throw PluginError.duplicatePass(name: e.name, path: path, existing: by ?? "prunec (built-in)")
            }
        }
        for e in registrar.registry.all { registry.add(e) }
        return registrar.registry.all.map(\.name)
    }

    private static func lastError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown error"
    }
}
