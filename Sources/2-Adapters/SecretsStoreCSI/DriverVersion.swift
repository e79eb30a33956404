/// The version this build reports in GetPluginInfo, `--version` and the provider API.
package enum DriverVersion {
    /// Semantic version of this build.
    package static let current = "0.1.0"
}
