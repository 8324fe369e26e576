// Stock programs under LD_PRELOAD=libswalloc.so: python3, gcc, perl, sqlite3 and git run real workloads
// whose results are checked, and each process proves that swalloc served its allocations.
import Foundation
import Testing

@Suite("Stock programs under the preload")
struct StockProgramTests {
  @Test("python3: a million-entry dict, big sorts, a JSON round trip")
  func python() async throws {
    // PYTHONMALLOC=malloc sends every object to malloc, not only those above pymalloc's 512-byte limit.
    let result = try await runPreloaded(
      try Preload.tool("python3"), [Preload.fixture("workload.py")], environment: ["PYTHONMALLOC": "malloc"])
    // The values workload.py prints under glibc malloc; any allocator must give the same.
    #expect(
      result.outputLines == [
        "dict 499999500036 666666 666666 333332666699",
        "sort 3706 2147482860 721144740763340 10002f75 ffff8cf",
        "json 19910974 8a6ae66e98b06a5e",
        "python workload ok",
        "",
      ], "\(result.summary)")
  }

  @Test("perl: a large hash, regexes, sorts")
  func perl() async throws {
    let result = try await runPreloaded(try Preload.tool("perl"), [Preload.fixture("workload.pl")])
    // The values workload.pl prints under glibc malloc.
    #expect(
      result.outputLines == [
        "hash 15029893296 150000 47509",
        "regex 200000 99863120 2989771 1200000",
        "sort 345 2147478386 576018624 10004247 fffdc25 c8bb 7fff6207",
        "perl workload ok",
        "",
      ], "\(result.summary)")
  }

  @Test("gcc -O2 compiles a generated 3000-function program that then runs correctly")
  func gcc() async throws {
    let directory = try makeTemporaryDirectory("gcc")
    defer { try? FileManager.default.removeItem(at: directory) }
    let program = GeneratedProgram(functionCount: 3000)
    let source = directory.appendingPathComponent("generated.c")
    try program.source.write(to: source, atomically: true, encoding: .utf8)

    let compile = try await runPreloaded(
      try Preload.tool("gcc"), ["-O2", "-o", "generated", "generated.c"], in: directory)
    // The driver, cc1, as, collect2 and ld each print a block: the preload reached the subprocesses too.
    let blocks = statisticsBlocks(in: compile.standardError)
    #expect(blocks.filter { ($0.allocationCount ?? 0) > 0 }.count >= 2, "\(compile.summary)")

    let run = try await runChild(directory.appendingPathComponent("generated").path, preload: nil, in: directory)
    #expect(run.succeeded && run.outputLines == ["\(program.expectedOutput)", ""], "\(run.summary)")
  }

  @Test("sqlite3: 100k rows in a transaction, indexes, aggregates")
  func sqlite() async throws {
    let directory = try makeTemporaryDirectory("sqlite")
    defer { try? FileManager.default.removeItem(at: directory) }
    let script = directory.appendingPathComponent("workload.sql")
    try SQLiteWorkload.script.write(to: script, atomically: true, encoding: .utf8)
    let result = try await runPreloaded(
      try Preload.tool("sqlite3"), ["-batch", "-bail", "workload.db", ".read workload.sql"], in: directory)
    #expect(result.outputLines == SQLiteWorkload.expectedLines + [""], "\(result.summary)")
  }

  @Test("git: init, add and commit a few hundred files, gc, fsck")
  func git() async throws {
    let directory = try makeTemporaryDirectory("git")
    defer { try? FileManager.default.removeItem(at: directory) }
    let git = try Preload.tool("git")
    // No user or system configuration may change what git does; identity comes from -c.
    let environment = ["HOME": directory.path, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"]
    let identity = ["-c", "user.name=Swalloc Test", "-c", "user.email=swalloc@example.invalid"]
    @discardableResult
    func gitPreloaded(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws
      -> ChildResult
    {
      try await runPreloaded(git, identity + arguments, environment: environment, in: directory,
                             sourceLocation: sourceLocation)
    }

    try await gitPreloaded(["init", "-q", "-b", "main"])
    try writeFiles(count: 300, in: directory, revision: 1)
    try await gitPreloaded(["add", "-A"])
    try await gitPreloaded(["commit", "-q", "-m", "First revision"])
    try writeFiles(count: 360, in: directory, revision: 2)
    try await gitPreloaded(["add", "-A"])
    try await gitPreloaded(["commit", "-q", "-m", "Second revision"])
    try await gitPreloaded(["gc", "-q"])
    try await gitPreloaded(["fsck", "--no-progress", "--strict"])

    let log = try await gitPreloaded(["log", "--oneline"])
    #expect(log.outputLines.filter { !$0.isEmpty }.count == 2, "\(log.summary)")
    let files = try await gitPreloaded(["ls-files"])
    #expect(files.outputLines.filter { !$0.isEmpty }.count == 360, "\(files.summary)")
    let status = try await gitPreloaded(["status", "--porcelain"])
    #expect(status.standardOutput.isEmpty, "\(status.summary)")
    let diff = try await gitPreloaded(["diff", "--stat", "HEAD~1", "HEAD"])
    #expect(diff.outputLines.contains { $0.contains("360 files changed") }, "\(diff.summary)")
  }

  /// Writes `count` files in ten directories; every file's content depends on `revision`.
  private func writeFiles(count: Int, in directory: URL, revision: Int) throws {
    for index in 0..<count {
      let folder = directory.appendingPathComponent("dir\(index % 10)")
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      let lines = (0..<(index % 40 + 1)).map { "file \(index) line \($0) revision \(revision)" }
      try (lines.joined(separator: "\n") + "\n")
        .write(to: folder.appendingPathComponent("file\(index).txt"), atomically: true, encoding: .utf8)
    }
  }
}

/// A C program of `functionCount` small non-inlinable functions chained by main, which prints the final value;
/// the same arithmetic in Swift gives the expected output.
struct GeneratedProgram {
  let functionCount: Int

  var source: String {
    var lines = ["// Generated by SwallocPreloadTests.", "#include <stdio.h>", ""]
    for index in 0..<functionCount {
      lines += [
        "__attribute__((noinline)) unsigned long long f\(index)(unsigned long long x) {",
        "  unsigned long long k = \(index)ULL * 2654435761ULL;",
        "  switch (x % 4) { case 0: x += k; break; case 1: x ^= k; break; case 2: x -= k; break; "
          + "default: x = x * 3 + \(index); }",
        "  for (int i = 0; i < 4; i++) x = (x ^ (x >> 13)) * 0x9e3779b97f4a7c15ULL;",
        "  return x + \(index);",
        "}",
      ]
    }
    lines += ["", "int main(void) {", "  unsigned long long s = 1;"]
    lines += (0..<functionCount).map { "  s = f\($0)(s);" }
    lines += ["  printf(\"%llu\\n\", s);", "  return 0;", "}", ""]
    return lines.joined(separator: "\n")
  }

  var expectedOutput: UInt64 {
    var s: UInt64 = 1
    for index in 0..<UInt64(functionCount) {
      var x = s
      let k = index &* 2654435761
      switch x % 4 {
      case 0: x = x &+ k
      case 1: x ^= k
      case 2: x = x &- k
      default: x = x &* 3 &+ index
      }
      for _ in 0..<4 { x = (x ^ (x >> 13)) &* 0x9e37_79b9_7f4a_7c15 }
      s = x &+ index
    }
    return s
  }
}

/// The sqlite3 script and the output it must produce, computed here from the same definitions.
enum SQLiteWorkload {
  static let rowCount = 100_000

  static let script = """
    CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER NOT NULL, grp INTEGER NOT NULL, name TEXT NOT NULL);
    BEGIN;
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < \(rowCount))
    INSERT INTO t(id, x, grp, name) SELECT i, (i * 7919) % 100003, i % 97, printf('name-%06d', i) FROM c;
    COMMIT;
    CREATE INDEX t_x ON t(x);
    CREATE INDEX t_grp_name ON t(grp, name);
    SELECT 'count', count(*), sum(x), min(x), max(x) FROM t;
    SELECT 'groups', count(DISTINCT grp) FROM t;
    SELECT 'range', count(*) FROM t WHERE x BETWEEN 1000 AND 2000;
    SELECT 'top', grp, count(*), sum(x) FROM t GROUP BY grp ORDER BY sum(x) DESC, grp LIMIT 1;
    BEGIN;
    DELETE FROM t WHERE id % 10 = 0;
    UPDATE t SET name = name || '-updated' WHERE grp = 5;
    COMMIT;
    SELECT 'after', count(*), sum(x), sum(length(name)) FROM t;
    SELECT 'integrity', * FROM pragma_integrity_check;

    """

  static var expectedLines: [String] {
    let ids = 1...rowCount
    func x(_ id: Int) -> Int { (id * 7919) % 100_003 }
    let xs = ids.map(x)
    var groupSums: [Int: (count: Int, sum: Int)] = [:]
    for id in ids { groupSums[id % 97, default: (0, 0)].count += 1; groupSums[id % 97]!.sum += x(id) }
    let top = groupSums.sorted { ($0.value.sum, -$0.key) > ($1.value.sum, -$1.key) }.first!
    let kept = ids.filter { $0 % 10 != 0 }
    // 'name-%06d' is 11 characters for ids below a million; '-updated' adds 8.
    let nameLengths = kept.map { 11 + ($0 % 97 == 5 ? 8 : 0) }.reduce(0, +)
    return [
      "count|\(rowCount)|\(xs.reduce(0, +))|\(xs.min()!)|\(xs.max()!)",
      "groups|97",
      "range|\(xs.filter { (1000...2000).contains($0) }.count)",
      "top|\(top.key)|\(top.value.count)|\(top.value.sum)",
      "after|\(kept.count)|\(kept.map(x).reduce(0, +))|\(nameLengths)",
      "integrity|ok",
    ]
  }
}
