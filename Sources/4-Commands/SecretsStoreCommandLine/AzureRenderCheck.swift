import SecretsStoreApplication
import SecretsStoreAzure
import SecretsStoreCore

/// `render`'s side of the `provider: azure` checks, which are the provider's own (``AzureClassCheck``): this
/// runs them with the command's `--azure-*` configuration and turns what they find into the report's terms:
/// a place becomes a field (`spec.parameters.objects[2]`, or the flag that gives what only a pod supplies), an
/// absent pod input gets the flag that supplies it, and the planned identity is put in words. It also checks
/// the class's `secretObjects` against the planned files.
enum AzureRenderCheck {
    /// What the checks found, in the report's terms.
    struct Result: Sendable {
        /// Every problem found.
        var problems: [RenderProblem]
        /// Remarks that are not problems.
        var notes: [String]
        /// The objects and files, when `objects` parses.
        var plan: AzureClassCheck.Plan?
        /// The identity in words (no credential), when the identity parameters parse.
        var identity: String?
    }

    /// Checks the provider request's `attributes` and the nodePublishSecretRef data `secrets` (`nil`: none
    /// given) as the built-in provider configured by `azure` would take them.
    static func check(
        attributes: [String: String],
        secrets: [String: String]?,
        dryRun: Bool,
        azure: DriverConfiguration.BuiltInAzure
    ) -> Result {
        let found = AzureClassCheck.check(
            AzureClassCheck.Input(
                attributes: attributes,
                secrets: secrets,
                dryRun: dryRun,
                defaultCloudName: azure.defaultCloudName,
                overrides: azure.overrides
            )
        )
        return Result(
            problems: found.problems.map(RenderProblem.init),
            notes: found.notes,
            plan: found.plan,
            identity: found.plan?.identity.map(describe)
        )
    }

    /// The report's field for `place`.
    static func field(_ place: AzureClassCheck.Place) -> String {
        switch place {
        case .parameters: "spec.parameters"
        case .parameter(let name): "spec.parameters.\(name)"
        case .objects: "spec.parameters.objects"
        case .object(let index): "spec.parameters.objects[\(index)]"
        case .nodePublishSecretRef: "nodePublishSecretRef (--secrets-file)"
        case .serviceAccountToken: "service account token (--token-file)"
        }
    }

    /// What to pass so that `input`, which only a pod supplies, is there.
    static func remedy(_ input: AzureClassCheck.PodInput) -> String {
        let audience = AzureClassCheck.workloadIdentityAudience
        switch input {
        case .serviceAccountToken:
            return "pass --token-file with a token for \(audience) (kubectl create token <service-account> --audience \(audience))"
        case .nodePublishSecretRef:
            return "pass --secrets-file with clientid and clientsecret, or use workload identity (clientID)"
        }
    }

    /// The identity in words; a service principal's `clientid` only when it came from `--secrets-file`.
    static func describe(_ identity: AzureClassCheck.PlannedIdentity) -> String {
        let audience = AzureClassCheck.workloadIdentityAudience
        switch identity {
        case .workloadIdentity(let clientID):
            return "workload identity, clientID \(clientID) (the pod's service account token for \(audience))"
        case .servicePrincipal(let clientID?):
            return "service principal, clientid \(clientID) (from --secrets-file)"
        case .servicePrincipal(nil):
            return "service principal: clientid and clientsecret from the pod's nodePublishSecretRef Secret"
        case .managedIdentity(let clientID?):
            return "managed identity, user-assigned \(clientID)"
        case .managedIdentity(nil):
            return "managed identity, the node's system-assigned identity"
        }
    }

    /// Checks that every `secretObjects[].data[].objectName` names a file of the plan or one `fileTemplates`
    /// composes (`composedFiles`). A class with a selector (`objectNameRegex`/`objectTags`) writes files known
    /// only from the vault's list: a name outside the plan may be one of them, and is checked at fetch instead.
    static func secretObjectProblems(
        _ secretObjects: [SecretProviderClass.SecretObject],
        plan: AzureClassCheck.Plan,
        composedFiles: [String] = []
    ) -> [RenderProblem] {
        guard !plan.hasSelector else { return [] }
        let paths = Set(plan.files.map(\.path) + composedFiles)
        var problems: [RenderProblem] = []
        for (index, object) in secretObjects.enumerated() {
            for (entryIndex, entry) in (object.data ?? []).enumerated() {
                // Entries with a template instead are checked by ClassTemplates.problems(in:providerFiles:).
                guard let objectName = ClassTemplates.objectName(of: entry), !paths.contains(objectName) else { continue }
                let field = "spec.secretObjects[\(index)].data[\(entryIndex)].objectName"
                if let aliased = plan.objects.first(where: { $0.name == objectName && !$0.alias.isEmpty }) {
                    problems.append(RenderProblem(field, "\(objectName) is written as \(aliased.alias) (its objectAlias): use \(aliased.alias)"))
                } else if let history = plan.objects.first(where: { $0.fileName == objectName && $0.versionHistory > 1 }) {
                    problems.append(RenderProblem(field, "\(objectName) keeps \(history.versionHistory) versions, written as \(objectName)/0…: use \(objectName)/0 for the latest"))
                } else {
                    let known = (plan.files.map(\.path) + composedFiles).joined(separator: ", ")
                    problems.append(RenderProblem(field, "no object of spec.parameters.objects is written as \(objectName) (the files are: \(known))"))
                }
            }
        }
        return problems
    }
}

extension RenderProblem {
    /// `problem` in the report's terms: its field, and its message followed by the flag that supplies the pod
    /// input whose absence it is.
    init(_ problem: AzureClassCheck.Problem) {
        self.init(
            AzureRenderCheck.field(problem.place),
            problem.absent.map { problem.message + "; " + AzureRenderCheck.remedy($0) } ?? problem.message
        )
    }
}

extension AzureClassCheck.Plan {
    /// Whether an entry of `objects` selects secrets (`objectNameRegex`/`objectTags`): then the files are not
    /// all known before the vault is listed.
    var hasSelector: Bool { objects.contains { $0.selector != nil } }
}
