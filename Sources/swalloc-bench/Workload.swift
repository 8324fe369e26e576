// The benchmark suite: each workload names its program (a C file in Benchmarks/Workloads, a stock program,
// or a command from `compare`), what it exercises, and the scale --quick runs it at.

/// How a workload's program is obtained. Every program takes a scale factor (1 = the full benchmark).
enum Recipe: Sendable {
  /// A C program from Benchmarks/Workloads, run as `program SCALE arguments...`.
  /// `quickArguments` replaces `arguments` under --quick when the program needs it (memreturn's sleep).
  case c(source: String, arguments: [String] = [], quickArguments: [String]? = nil)
  /// python3 running a script from Benchmarks/Workloads with PYTHONMALLOC=malloc.
  case python(script: String)
  /// gcc -O2 compiling a generated C file of `functions` functions (at scale 1).
  case gcc(functions: Int)
  /// sqlite3 on an in-memory database, running a script from Benchmarks/Workloads with `@ROWS@` replaced.
  case sqlite(template: String, rows: Int)
  /// A Swift program from Benchmarks/Workloads, compiled once with `swiftc -O`.
  case swift(source: String)
  /// Any command (the `compare` subcommand); the scale does not apply.
  case command([String])
}

/// One benchmark.
struct Workload: Sendable {
  let name: String
  /// What it exercises, one line.
  let summary: String
  let recipe: Recipe
  /// The scale --quick runs it at; the full run uses 1 (both times --scale).
  var quickScale: Double = 0.02
}

enum Suite {
  /// Every workload, in report order.
  static let all: [Workload] = [
    Workload(name: "churn-lifo", summary: "1 thread, 8 B..1 KiB, freed last-in first-out",
             recipe: .c(source: "churn.c", arguments: ["lifo"])),
    Workload(name: "churn-fifo", summary: "1 thread, 8 B..1 KiB, freed first-in first-out",
             recipe: .c(source: "churn.c", arguments: ["fifo"])),
    Workload(name: "churn-random", summary: "1 thread, 8 B..1 KiB, freed in random order",
             recipe: .c(source: "churn.c", arguments: ["random"])),
    Workload(name: "sizesweep", summary: "batches of each size class 8 B..64 KiB in turn",
             recipe: .c(source: "sizesweep.c")),
    Workload(name: "realloc", summary: "64 realloc growth chains (appends, 1.5x growth, halving)",
             recipe: .c(source: "realloc.c")),
    Workload(name: "large", summary: "64 KiB..64 MiB blocks, every page touched, 8 slots churned",
             recipe: .c(source: "large.c"), quickScale: 0.05),
    Workload(name: "largeblocks", summary: "2000 replacements among 20 live 5..25 MiB blocks, each zero-filled",
             recipe: .c(source: "largeblocks.c"), quickScale: 0.02),
    Workload(name: "xmalloc-2", summary: "producer/consumer, 1 producer 1 consumer, all frees remote",
             recipe: .c(source: "xmalloc.c", arguments: ["2"])),
    Workload(name: "xmalloc-4", summary: "producer/consumer, 2 producers 2 consumers",
             recipe: .c(source: "xmalloc.c", arguments: ["4"])),
    Workload(name: "xmalloc-8", summary: "producer/consumer, 4 producers 4 consumers",
             recipe: .c(source: "xmalloc.c", arguments: ["8"])),
    Workload(name: "larson", summary: "4 threads replace random slots, new threads every round",
             recipe: .c(source: "larson.c", arguments: ["4"])),
    Workload(name: "mstress", summary: "short-lived threads leave objects for others to free",
             recipe: .c(source: "mstress.c", arguments: ["4"])),
    Workload(name: "threadchurn-2", summary: "rounds of 2 threads that calloc, trade objects and exit (test-stress)",
             recipe: .c(source: "threadchurn.c", arguments: ["2"])),
    Workload(name: "threadchurn-4", summary: "the same with 4 threads a round",
             recipe: .c(source: "threadchurn.c", arguments: ["4"])),
    Workload(name: "cache-scratch", summary: "4 threads write small objects freed by another (false sharing)",
             recipe: .c(source: "cache-scratch.c", arguments: ["4"])),
    Workload(name: "memreturn", summary: "1 GiB of small objects, all freed, RSS read after the purge delay",
             recipe: .c(source: "memreturn.c", arguments: ["1500"], quickArguments: ["400"]),
             quickScale: 1.0 / 16),
    Workload(name: "startup", summary: "spawns /bin/true 400 times under the allocator",
             recipe: .c(source: "startup.c"), quickScale: 0.1),
    Workload(name: "python", summary: "python3 dict/list/str/JSON script, PYTHONMALLOC=malloc",
             recipe: .python(script: "pywork.py")),
    Workload(name: "gcc", summary: "gcc -O2 -c on a generated C file",
             recipe: .gcc(functions: 200), quickScale: 0.1),
    Workload(name: "sqlite", summary: "sqlite3 in-memory inserts, indexes, joins, group by, updates",
             recipe: .sqlite(template: "sqlite.sql", rows: 150_000)),
    Workload(name: "swift", summary: "Swift Array, Dictionary, String and class-heavy program",
             recipe: .swift(source: "swiftwork.swift")),
  ]

  /// The workloads matching `patterns` (names, or a prefix before '-': "xmalloc" selects xmalloc-2/4/8);
  /// every workload when `patterns` is empty. Patterns that match nothing are an error.
  static func select(_ patterns: [String], from workloads: [Workload] = all) throws -> [Workload] {
    guard !patterns.isEmpty else { return workloads }
    func matches(_ workload: Workload, _ pattern: String) -> Bool {
      workload.name == pattern || workload.name.hasPrefix(pattern + "-")
    }
    let unmatched = patterns.filter { pattern in !workloads.contains { matches($0, pattern) } }
    guard unmatched.isEmpty else {
      throw BenchError("no workload named \(unmatched.joined(separator: ", ")); "
        + "choose from \(workloads.map(\.name).joined(separator: ", "))")
    }
    return workloads.filter { workload in patterns.contains { matches(workload, $0) } }
  }
}
