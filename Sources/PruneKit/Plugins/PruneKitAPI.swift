/// The version of the plugin API: the shape of ``Pass``, ``PassContext``, ``PassRegistry`` and the
/// rest of the public API a plugin compiles against.
///
/// A plugin built against one version is refused by a `prunec` of another (exit 65, before any of
/// its passes is registered). The number changes whenever a public declaration a plugin may use
/// changes incompatibly.
public enum PruneKitAPI {
    /// The API version, compiled into the client: a plugin carries the number of the PruneKit it
    /// was built against (it is not read from the host at run time, which would always agree).
    @_alwaysEmitIntoClient
    public static var version: Int32 { 1 }

    /// The C symbol every plugin library exports (see ``PluginRegistrar/entry(_:register:)``).
    public static let entryPoint = "prunec_plugin_register"
}
