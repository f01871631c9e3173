/// The version of the plugin API: the shape of ``Pass``, ``PassContext``, ``PassRegistry`` and the
/// rest of the public API a plugin compiles against.
///
/// A plugin built against one version is refused by a `prunec` of another (exit 65, before any of
/// its passes is registered). The number changes whenever a public declaration a plugin may use
/// changes incompatibly.
///
/// History:
/// - 2: options are typed and declared once (``PassOption`` property wrappers in a
///   ``PassOptions`` struct with `init()`; `OptionValues` and the `declarations` arrays are gone);
///   ``Pass`` requires `var options` and may declare ``Pass/requirements`` (the original model,
///   calibration data) instead of the host matching pass names; ``PassContext/progress`` and
///   ``PassContext/scoreCache`` (scores shared across a sweep's amounts); the
///   drivers (``Compiler``, ``CheckReport/measure(model:baseline:inputs:shapes:threads:thresholds:)``,
///   ``ModelDiff/compare(_:_:shapes:)``) and `Model.copy()` are public.
/// - 1: the first plugin API.
public enum PruneKitAPI {
    /// The API version, compiled into the client: a plugin carries the number of the PruneKit it
    /// was built against (it is not read from the host at run time, which would always agree).
    @_alwaysEmitIntoClient
    public static var version: Int32 { 2 }

    /// The C symbol every plugin library exports (see ``PluginRegistrar/entry(_:register:)``).
    public static let entryPoint = "prunec_plugin_register"
}
