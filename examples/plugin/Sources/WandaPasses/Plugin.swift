import PruneKit

/// The plugin's entry point: prunec calls it once after loading the library. It registers the
/// passes and returns the PruneKit API version the plugin was built against.
@_cdecl("prunec_plugin_register")
public func prunecPluginRegister(_ handle: UnsafeMutableRawPointer?) -> Int32 {
    PluginRegistrar.entry(handle) { registrar in
        registrar.register(WandaPass.self)
    }
}
