/// The first step of applying a provider's answer: the volume's files. Swaps them in atomically with the
/// ``AtomicWriter`` (owned by the request's fsGroup when there is one), or, for a provider that writes into the
/// target itself (no files in its answer), checks that it left something there (its files keep the owners and
/// modes it gave them). Touches the file system only.
package struct WriteFilesStep: Sendable {
    private let writer: AtomicWriter
    private let fileSystem: any FileSystem

    /// Writes with `writer` and looks into targets through `fileSystem`.
    package init(writer: AtomicWriter, fileSystem: any FileSystem) {
        self.writer = writer
        self.fileSystem = fileSystem
    }

    /// Writes `response`'s files into `target`; returns whether they changed (always `true` for a provider that
    /// wrote them itself). Throws ``PublishError/writeFailed(targetPath:reason:)`` when the write or the listing
    /// fails and ``PublishError/emptyVolume(provider:)`` when a provider that writes itself left nothing.
    package func write(
        _ response: ProviderResponse,
        to target: String,
        provider: String,
        group: UInt32?
    ) throws(PublishError) -> Bool {
        guard response.files.isEmpty else {
            do {
                return try writer.write(response.files, to: target, group: group) == .written
            } catch {
                throw PublishError(error, target: target, during: .writingFiles)
            }
        }
        let entries: [String]
        do {
            entries = try fileSystem.contentsOfDirectory(at: target)
        } catch {
            throw PublishError(error, target: target, during: .writingFiles)
        }
        guard !entries.isEmpty else { throw .emptyVolume(provider: provider) }
        return true
    }
}
