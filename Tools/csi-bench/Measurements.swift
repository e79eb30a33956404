import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Latency samples in milliseconds, with the percentiles the report prints.
struct Samples {
    private(set) var milliseconds: [Double] = []

    mutating func add(_ duration: Duration) { milliseconds.append(duration.milliseconds) }

    mutating func add(milliseconds value: Double) { milliseconds.append(value) }

    /// The nearest-rank percentile (`p` in 0...1).
    func percentile(_ p: Double) -> Double {
        guard !milliseconds.isEmpty else { return .nan }
        let sorted = milliseconds.sorted()
        let rank = max(1, Int((p * Double(sorted.count)).rounded(.up)))
        return sorted[min(sorted.count, rank) - 1]
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// Times `body` on the continuous clock.
func measure(_ body: () async throws -> Void) async rethrows -> Duration {
    let start = ContinuousClock.now
    try await body()
    return ContinuousClock.now - start
}

/// The whole text of a /proc file (they report size 0, so read until the end).
func readProc(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}

/// What /proc says about a process.
struct ProcessFacts {
    let pid: Int32

    /// A field of /proc/<pid>/status in KiB (VmRSS, RssAnon, RssFile, VmHWM).
    func statusKiB(_ field: String) -> Int {
        guard let text = readProc("/proc/\(pid)/status") else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    var residentMiB: Double { Double(statusKiB("VmRSS")) / 1024 }
    var anonymousMiB: Double { Double(statusKiB("RssAnon")) / 1024 }
    var fileBackedMiB: Double { Double(statusKiB("RssFile")) / 1024 }
    var threads: Int { statusKiB("Threads") }
    var openFileDescriptors: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }

    /// User + system CPU seconds (clock-tick resolution).
    var cpuSeconds: Double {
        guard let text = readProc("/proc/\(pid)/stat"),
            let close = text.lastIndex(of: ")")
        else { return .nan }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
        let utime = Double(fields[11]) ?? 0
        let stime = Double(fields[12]) ?? 0
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident KiB by mapping kind from /proc/<pid>/smaps: the executable's own pages, shared libraries,
    /// heap and anonymous mappings, thread stacks.
    func residentBreakdown() -> [(String, Int)] {
        guard let text = readProc("/proc/\(pid)/smaps") else { return [] }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
        var totals: [String: Int] = [:]
        var current = "anonymous"
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), fields.count >= 5, first.first?.isHexDigit == true {
                let path = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
                if path == executable {
                    current = "executable image"
                } else if path.hasPrefix("/") {
                    current = "shared libraries"
                } else if path == "[heap]" {
                    current = "heap (brk)"
                } else if path.hasPrefix("[stack") {
                    current = "main stack"
                } else {
                    current = "anonymous (malloc arenas, thread stacks)"
                }
            } else if fields.first == "Rss:", fields.count >= 2 {
                totals[current, default: 0] += Int(fields[1]) ?? 0
            }
        }
        return totals.sorted { $0.value > $1.value }
    }
}

/// Mount points currently listed for this mount namespace whose path starts with `prefix`.
func mountCount(under prefix: String) -> Int {
    guard let text = readProc("/proc/self/mountinfo") else { return -1 }
    return text.split(separator: "\n").filter { line in
        let fields = line.split(separator: " ")
        return fields.count > 4 && fields[4].hasPrefix(prefix)
    }.count
}

/// Machine facts printed with the results.
enum Machine {
    static var facts: [String: String] {
        var facts: [String: String] = ["cores": "\(sysconf(Int32(_SC_NPROCESSORS_ONLN)))"]
        if let meminfo = readProc("/proc/meminfo"),
            let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") })
        {
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
            facts["memory"] = "\(kib / 1024 / 1024) GiB"
        }
        if let cpuinfo = readProc("/proc/cpuinfo"),
            let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
        {
            facts["cpu"] = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        var name = utsname()
        uname(&name)
        facts["kernel"] = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        facts["root"] = getuid() == 0 ? "yes (real tmpfs mounts)" : "no (recording mounter)"
        return facts
    }
}

/// One line of the report: our figure next to the floor measured in the same run, and the target.
struct Row {
    var name: String
    var ours: Double
    var floor: Double?
    var unit: String
    var target: String
    var met: Bool?

    var json: [String: Any] {
        var object: [String: Any] = ["name": name, "value": ours, "unit": unit, "target": target]
        if let floor { object["floor"] = floor }
        if let met { object["met"] = met }
        return object
    }
}

/// Collects rows, prints them as a table and writes them as JSON.
final class Report {
    private(set) var rows: [Row] = []
    var notes: [String: Any] = [:]

    func add(_ name: String, _ ours: Double, floor: Double? = nil, unit: String, target: String = "", met: Bool? = nil) {
        let row = Row(name: name, ours: ours, floor: floor, unit: unit, target: target, met: met)
        rows.append(row)
        print(Self.line(row))
        fflush(nil)  // every stream: the table shows while the bench runs
    }

    static func header() -> String {
        pad("figure", 46) + pad("ours", 11) + pad("floor", 11) + pad("unit", 9) + "target"
    }

    static func line(_ row: Row) -> String {
        let verdict = row.met.map { $0 ? "  met" : "  MISSED" } ?? ""
        return pad(row.name, 46) + pad(format(row.ours), 11) + pad(row.floor.map(format) ?? "-", 11) + pad(row.unit, 9)
            + row.target + verdict
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "n/a" }
        return value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    func write(json path: String, machine: [String: String]) throws {
        let object: [String: Any] = ["machine": machine, "rows": rows.map(\.json), "notes": notes]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
