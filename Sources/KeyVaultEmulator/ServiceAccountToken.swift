import Foundation

/// A service account token of the shape kubelet mints for `tokenRequests` (a JWT with `sub`, `aud`, `iss`,
/// `iat`, `exp`), for tests and the demo. Unsigned: the emulator checks the claims, as Entra checks them against
/// the federated credential, but not the signature.
package enum ServiceAccountToken {
    /// An unsigned JWT for `subject` and `audience`, issued now and expiring after `expiresIn` (negative for
    /// one already expired).
    package static func make(
        subject: String,
        audience: String = "api://AzureADTokenExchange",
        issuer: String = "https://oidc.example/issuer",
        expiresIn: TimeInterval = 3600
    ) -> String {
        func segment(_ object: [String: Any]) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let now = Date().timeIntervalSince1970
        let claims: [String: Any] = ["aud": [audience], "sub": subject, "iss": issuer, "iat": Int(now), "exp": Int(now + expiresIn)]
        return segment(["alg": "RS256", "typ": "JWT"]) + "." + segment(claims) + ".c2lnbmF0dXJl"
    }

    /// Kubelet's `csi.storage.k8s.io/serviceAccount.tokens` value carrying `token` for `audience`.
    package static func volumeContextValue(_ token: String, audience: String = "api://AzureADTokenExchange") -> String {
        #"{"\#(audience)":{"token":"\#(token)","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#
    }
}
