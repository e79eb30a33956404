extension FuzzTarget {
    /// Every target, in the order `csi-fuzz` runs them.
    package static let all: [FuzzTarget] = [
        objectsYAML, volumeContextJSON, mountResponse, keyVaultJSON, kubeconfig, secretList, jsonFields, valueTemplate,
    ]

    /// The target called `name`, if there is one.
    package static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}
