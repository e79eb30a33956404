import CSIProtocol
import GRPCCore
import Logging
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Serves any ``SecretsProvider`` over the v1alpha1 `CSIDriverProvider` API, so a driver that speaks it (the
/// upstream Go driver, or this one with the built-in provider turned off) can use it from a Unix socket.
package struct ProviderService: V1alpha1_CSIDriverProvider.SimpleServiceProtocol {
    /// The service's full name, `v1alpha1.CSIDriverProvider`, as health clients ask for it.
    package static let serviceName = V1alpha1_CSIDriverProvider.descriptor.fullyQualifiedService

    private let provider: any SecretsProvider
    private let runtimeName: String
    private let logger: Logger

    /// Serves `provider`; Version reports `runtimeName` as `runtime_name`, and every fetch logs to `logger`.
    package init(provider: any SecretsProvider, runtimeName: String, logger: Logger) {
        self.provider = provider
        self.runtimeName = runtimeName
        self.logger = logger
    }

    /// `version` `v1alpha1`, `runtime_name`, and ``DriverVersion/current`` as `runtime_version`.
    package func version(request: V1alpha1_VersionRequest, context: ServerContext) async throws -> V1alpha1_VersionResponse {
        var response = V1alpha1_VersionResponse()
        response.version = "v1alpha1"
        response.runtimeName = runtimeName
        response.runtimeVersion = DriverVersion.current
        return response
    }

    /// Decodes the request (INVALID_ARGUMENT when it does not parse), fetches with the call's deadline, and answers
    /// `files` and `object_version`. A provider failure is thrown as the gRPC status `RPCError.code(for:)` picks,
    /// with the failure's description; the response's `error` is never set.
    package func mount(request: V1alpha1_MountRequest, context: ServerContext) async throws -> V1alpha1_MountResponse {
        let providerRequest = try Self.providerRequest(from: request, deadline: RequestDeadline.from(context))
        let answer: ProviderResponse
        do {
            answer = try await provider.fetch(providerRequest, logger: logger)
        } catch {
            throw RPCError(code: RPCError.code(for: error), message: error.description)
        }
        var response = V1alpha1_MountResponse()
        response.files = answer.files.map { file in
            var out = V1alpha1_File()
            out.path = file.path
            out.mode = Int32(file.mode)
            out.contents = Data(file.contents)
            return out
        }
        response.objectVersion = answer.objectVersions.map { version in
            var out = V1alpha1_ObjectVersion()
            out.id = version.id
            out.version = version.version
            return out
        }
        return response
    }

    /// Decodes the JSON fields of a MountRequest, with the upstream provider's error texts.
    package static func providerRequest(
        from request: V1alpha1_MountRequest,
        deadline: ContinuousClock.Instant?
    ) throws(RPCError) -> ProviderRequest {
        let decoder = JSONDecoder()
        let attributes: [String: String]
        do {
            attributes = try decoder.decode([String: String].self, from: Data(request.attributes.utf8))
        } catch {
            throw RPCError(code: .invalidArgument, message: "failed to unmarshal attributes, error: not a JSON object of strings")
        }
        var secrets: [String: String] = [:]
        if !request.secrets.isEmpty, request.secrets != "null" {
            do {
                secrets = try decoder.decode([String: String].self, from: Data(request.secrets.utf8))
            } catch {
                throw RPCError(code: .invalidArgument, message: "failed to unmarshal secrets, error: not a JSON object of strings")
            }
        }
        guard let permission = UInt32(request.permission.filter { !$0.isWhitespace }), permission <= 0o7777 else {
            throw RPCError(code: .invalidArgument, message: "failed to unmarshal file permission, error: \"\(request.permission)\" is not a number")
        }
        return ProviderRequest(
            attributes: attributes,
            secrets: secrets,
            targetPath: request.targetPath,
            permission: permission,
            currentObjectVersions: request.currentObjectVersion.map { ObjectVersion(id: $0.id, version: $0.version) },
            deadline: deadline
        )
    }
}
