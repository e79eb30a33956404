import SecretsStoreCore
import Yams

extension SecretsStoreCore.SecretProviderClass {
    /// The SecretProviderClass a manifest describes (YAML or JSON, one document), read as the REST client reads
    /// the object from the API server; `namespace` and `name` stand in when the manifest's `metadata` lacks them.
    ///
    /// - Throws: the YAML decoder's error when the text is not a SecretProviderClass document.
    package init(manifest text: String, namespace: String, name: String) throws {
        let wire = try YAMLDecoder().decode(Resources.SecretProviderClass.self, from: text)
        self = wire.domainValue(namespace: namespace, name: name)
    }
}
