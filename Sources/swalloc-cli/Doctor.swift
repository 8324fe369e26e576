// `swalloc doctor`: what this machine allows Swalloc to do (explicit and transparent huge pages, locked
// memory, the library itself), and for each shortfall the exact command that fixes it. It reads /proc and
// /sys and runs `true` under the library; it never changes anything.
import ArgumentParser
import Foundation
import Glibc

/// One finding: a heading, whether it is fine, what was seen, and the commands that would fix it.
struct Finding {
  var topic: String
  var isShortfall: Bool
  var detail: String
  var fixes: [String] = []
}

/// The machine's state as the doctor reads it. `root` prefixes every /proc and /sys path, so that tests
/// can describe a machine (a directory holding proc/ and sys/ files).
struct MachineState {
  var root: String

  func read(_ path: String) -> String? {
    try? String(contentsOfFile: root + path, encoding: .utf8)
  }

  /// The number on a `Name: value` line of /proc/meminfo or /proc/self/status.
  func field(_ name: String, in path: String) -> String? {
    read(path)?.split(separator: "\n").first { $0.hasPrefix(name + ":") }
      .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
  }

  var nrHugePages: Int? { read("/proc/sys/vm/nr_hugepages").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
  var freeHugePages: Int? { field("HugePages_Free", in: "/proc/meminfo").flatMap { Int($0) } }
  /// Bytes per explicit huge page (Hugepagesize), 2 MiB when not reported.
  var hugePageByteCount: Int {
    field("Hugepagesize", in: "/proc/meminfo").flatMap { Int($0.split(separator: " ").first ?? "") }.map { $0 * 1024 }
      ?? 2 << 20
  }

  /// The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled: always, madvise or never.
  var transparentHugePageMode: String? {
    guard let text = read("/sys/kernel/mm/transparent_hugepage/enabled"),
          let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
    return String(text[text.index(after: open)..<close])
  }

  /// Whether this process holds CAP_IPC_LOCK (bit 14 of CapEff), which lifts RLIMIT_MEMLOCK.
  var canLockWithoutLimit: Bool {
    guard let text = field("CapEff", in: "/proc/self/status"), let mask = UInt64(text, radix: 16) else { return false }
    return mask & (1 << 14) != 0
  }
}

extension SwallocCommand {
  struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Say what this machine allows Swalloc to do, and how to fix each shortfall.",
      discussion: """
        Checks explicit huge pages (vm.nr_hugepages and free huge pages), the transparent huge page mode, \
        RLIMIT_MEMLOCK, and whether the library loads (its version and default mode). For each shortfall \
        it prints the command that fixes it; it changes nothing itself. Exits 1 when the library cannot \
        be found or loaded, else 0.
        """)

    @Option(help: ArgumentHelp("The libswalloc.so to check (default: the one `swalloc run` would use).",
                               valueName: "path"))
    var library: String?

    @Option(name: .customLong("system-root"), help: ArgumentHelp(
      "Read proc/ and sys/ under this directory instead of / (for tests).", valueName: "dir", visibility: .hidden))
    var systemRoot: String = ""

    func run() throws {
      let machine = MachineState(root: systemRoot.hasSuffix("/") ? String(systemRoot.dropLast()) : systemRoot)
      let libraryFinding = checkLibrary()
      let findings = [libraryFinding, checkExplicitHugePages(machine), checkTransparentHugePages(machine),
                      checkLockedMemory(machine)]
      print("swalloc doctor (swalloc \(CommandVersion.text)): what this machine allows; nothing is changed")
      for finding in findings {
        print("")
        print("\(finding.topic): \(finding.isShortfall ? "SHORTFALL" : "ok")")
        print("  \(finding.detail)")
        for fix in finding.fixes { print("  fix: \(fix)") }
      }
      let count = findings.filter(\.isShortfall).count
      print("")
      print(count == 0 ? "no shortfalls" : "\(count) shortfall\(count == 1 ? "" : "s") (the fixes above are not applied)")
      if libraryFinding.isShortfall { throw ExitCode.failure }
    }

    func checkLibrary() -> Finding {
      let topic = "library"
      let found: String
      do {
        found = try LibraryLocator.find(explicit: library)
      } catch {
        return Finding(topic: topic, isShortfall: true, detail: "\(error)",
                       fixes: ["swift build -c release   # in the Swalloc package: builds .build/release/libswalloc.so",
                               "swalloc install --prefix /usr/local   # from a build that has it"])
      }
      switch HandshakeProbe.run(library: found) {
      case .answered(let answer):
        let mode = answer.mode == "secure"
          ? "secure mode by default (built with SWALLOC_SECURE_DEFAULT; --option SECURE=0 turns it off)"
          : "default mode by default (--secure for secure mode)"
        var detail = "\(found) loads: version \(answer.version), \(mode)"
        if answer.version != CommandVersion.text { detail += "; this command is \(CommandVersion.text)" }
        return Finding(topic: topic, isShortfall: false, detail: detail)
      case .failed(let reason):
        return Finding(topic: topic, isShortfall: true, detail: "\(found) does not load: \(reason)",
                       fixes: ["swift build -c release   # rebuild it in the Swalloc package"])
      }
    }

    func checkExplicitHugePages(_ machine: MachineState) -> Finding {
      let topic = "explicit huge pages (--huge-pages explicit, --huge-reserve)"
      let pageMiB = machine.hugePageByteCount >> 20
      guard let total = machine.nrHugePages else {
        return Finding(topic: topic, isShortfall: true,
                       detail: "this kernel has no hugetlb pool (/proc/sys/vm/nr_hugepages is missing): "
                         + "--huge-pages explicit uses normal pages")
      }
      let pages = max(1, 512 / max(1, pageMiB))
      let fixes = [
        "sysctl -w vm.nr_hugepages=\(total + pages)   # as root: reserves \(pages * pageMiB) MiB more in "
          + "\(pageMiB) MiB pages, until reboot",
        "echo 'vm.nr_hugepages = \(total + pages)' > /etc/sysctl.d/80-swalloc.conf   # as root: the same at every boot",
      ]
      if total == 0 {
        return Finding(topic: topic, isShortfall: true,
                       detail: "none reserved (vm.nr_hugepages = 0): --huge-pages explicit falls back to normal "
                         + "pages (counted in the statistics)", fixes: fixes)
      }
      let free = machine.freeHugePages ?? 0
      if free == 0 {
        return Finding(topic: topic, isShortfall: true,
                       detail: "\(total) reserved, none free: --huge-pages explicit falls back to normal pages",
                       fixes: fixes)
      }
      return Finding(topic: topic, isShortfall: false,
                     detail: "\(free) of \(total) free (\(pageMiB) MiB each): up to \(free * pageMiB) MiB, "
                       + "e.g. --huge-reserve \(free * pageMiB)M")
    }

    func checkTransparentHugePages(_ machine: MachineState) -> Finding {
      let topic = "transparent huge pages (--huge-pages transparent)"
      let path = "/sys/kernel/mm/transparent_hugepage/enabled"
      switch machine.transparentHugePageMode {
      case nil:
        return Finding(topic: topic, isShortfall: true,
                       detail: "this kernel has no transparent huge pages (\(path) is missing): the option does nothing")
      case "never":
        return Finding(topic: topic, isShortfall: true,
                       detail: "mode never: madvise(MADV_HUGEPAGE) is ignored, the option does nothing",
                       fixes: ["echo madvise > \(path)   # as root, until reboot (transparent_hugepage=madvise on "
                                 + "the kernel command line keeps it)"])
      case let mode?:
        return Finding(topic: topic, isShortfall: false,
                       detail: "mode \(mode): the option backs segments with 2 MiB pages where the kernel can")
      }
    }

    func checkLockedMemory(_ machine: MachineState) -> Finding {
      let topic = "locked memory (--locked)"
      var limit = rlimit()
      getrlimit(__rlimit_resource_t(8), &limit)  // RLIMIT_MEMLOCK (not imported by Glibc)
      let unlimited = rlim_t.max  // RLIM_INFINITY
      func text(_ value: rlim_t) -> String { value == unlimited ? "unlimited" : "\(value >> 10) KiB" }
      let described = "RLIMIT_MEMLOCK is \(text(limit.rlim_cur)) (hard limit \(text(limit.rlim_max)))"
      if limit.rlim_cur == unlimited {
        return Finding(topic: topic, isShortfall: false, detail: "\(described): --locked locks all of the heap")
      }
      if machine.canLockWithoutLimit {
        return Finding(topic: topic, isShortfall: false,
                       detail: "\(described), but this user has CAP_IPC_LOCK (root): --locked locks all of the heap")
      }
      var fixes: [String] = []
      if limit.rlim_max == unlimited {
        fixes.append("ulimit -l unlimited   # in the shell that runs `swalloc run` (its hard limit allows it)")
      } else {
        if limit.rlim_max > limit.rlim_cur {
          fixes.append("ulimit -l \(limit.rlim_max >> 10)   # in the shell that runs `swalloc run`: up to the hard limit")
        }
        fixes.append("echo '\(NSUserName()) - memlock unlimited' >> /etc/security/limits.conf   # as root; "
                       + "applies from the next login")
        fixes.append("sudo prlimit --memlock=unlimited:unlimited --pid $$   # raises this shell's limits, until it exits")
      }
      return Finding(topic: topic, isShortfall: true,
                     detail: "\(described): --locked locks the first \(text(limit.rlim_cur)) of the heap, the "
                       + "rest stays unlocked (counted in the statistics)", fixes: fixes)
    }
  }
}
