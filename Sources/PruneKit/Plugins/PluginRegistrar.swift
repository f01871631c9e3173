/// What a plugin's entry point registers its passes with.
///
/// A plugin library exports one C function, `prunec_plugin_register`, that hands its argument to
/// ``entry(_:register:)``:
///
/// ```swift
/// @_cdecl("prunec_plugin_register")
/// public func prunecPluginRegister(_ handle: UnsafeMutableRawPointer?) -> Int32 {
///     PluginRegistrar.entry(handle) { $0.register(WandaPass.self) }
/// }
/// ```
///
/// The handle points to four machine words (a plain C layout, so that a plugin of another API
/// version can still read them safely): the host's API version, the registrar object, the host's
/// identity of ``PassRegistry``'s type metadata, and a word the plugin fills with its own. The
/// plugin registers only when its ``PruneKitAPI/version`` equals the host's and both see the
/// same type metadata, i.e. the plugin runs against the host's copy of PruneKit; it always
/// returns its version. The host checks both again after the call, and commits the registrations
/// to its ``PassRegistry`` only then (see ``PluginLoader``).
public final class PluginRegistrar {
    /// The passes the plugin registered so far (not yet in the host's registry).
    public private(set) var registry = PassRegistry()
    /// The plugin library's path, recorded as each pass's ``PassRegistry/Entry/origin``.
    public let origin: String

    /// A registrar for the plugin at `origin`.
    public init(origin: String) {
        self.origin = origin
    }

    /// Registers pass type `P`, made by the plugin.
    public func register<P: Pass>(_ pass: P.Type) {
        registry.register(pass, origin: origin)
    }

    /// Word offsets in the handle.
    @usableFromInline enum Word {
        @usableFromInline static let version = 0
        @usableFromInline static let registrar = 1
        @usableFromInline static let hostTypeIdentity = 2
        @usableFromInline static let pluginTypeIdentity = 3
        @usableFromInline static let count = 4
    }

    /// The body of a plugin's `prunec_plugin_register`: checks the host's API version and that the
    /// plugin sees the host's PruneKit, then calls `register` with the registrar.
    ///
    /// Compiled into the plugin (it is `@inlinable`), so it works the same against any host.
    ///
    /// - Parameters:
    ///   - handle: The entry point's argument.
    ///   - register: Registers the plugin's passes (`$0.register(MyPass.self)`); called at most once.
    /// - Returns: The plugin's ``PruneKitAPI/version``, the entry point's result.
    @inlinable
    public static func entry(_ handle: UnsafeMutableRawPointer?, register: (PluginRegistrar) -> Void) -> Int32 {
        let version = PruneKitAPI.version
        guard let handle else { return version }
        let words = handle.bindMemory(to: UInt.self, capacity: Word.count)
        let mine = UInt(bitPattern: ObjectIdentifier(PassRegistry.self))
        words[Word.pluginTypeIdentity] = mine
        guard words[Word.version] == UInt(UInt32(bitPattern: version)), words[Word.hostTypeIdentity] == mine,
            let object = UnsafeRawPointer(bitPattern: words[Word.registrar])
        else { return version }
        register(Unmanaged<PluginRegistrar>.fromOpaque(object).takeUnretainedValue())
        return version
    }
}
