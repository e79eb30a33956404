/// The `objects` parameter of the reference's worked example (§4.8 of the Azure provider notes): a secret with
/// an alias, a PKCS#12 certificate read as a secret, the same certificate as `cert`, a key, and two versions of
/// a secret. Shared by the tests that check the files it must produce.
package enum WorkedExample {
    /// The `objects` YAML.
    package static let objects = """
        array:
          - |
            objectName: db-pass
            objectType: secret
            objectAlias: DB_PASSWORD
          - |
            objectName: web
            objectType: secret
          - |
            objectName: web
            objectType: cert
            objectAlias: tls.crt
          - |
            objectName: signing
            objectType: key
          - |
            objectName: api-key
            objectType: secret
            objectVersionHistory: 2
        """
}
