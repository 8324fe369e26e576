// The swalloc command (product swalloc-cli), run as a child like a person would run it: run (exit status,
// signals, stdin, options, a preload that cannot take), doctor on a machine without huge pages, version,
// install into a temporary prefix with a C program built against it through pkg-config, and uninstall.
import Foundation
import Glibc
import Testing

/// Runs the built swalloc command with `arguments` through `/usr/bin/env -u SWALLOC_LIB` (the harness's own
/// variable is no option of the library). SWALLOC_* variables of the test's environment (SWALLOC_SECURE=1)
/// pass on to the programs it runs, as they would for a person.
func runCommand(
  _ arguments: [String], environment: [String: String] = [:], timeout: Int = shortChildTimeout
) async throws -> ChildResult {
  let command = try Preload.buildProduct("swalloc-cli")
  return try await runChild("/usr/bin/env", ["-u", "SWALLOC_LIB", command] + arguments, preload: nil,
                            environment: environment, timeout: timeout)
}

/// `sh -c script` with $SWALLOC naming the built command, for pipes and job control around it.
func runCommandScript(_ script: String, timeout: Int = shortChildTimeout) async throws -> ChildResult {
  let command = try Preload.buildProduct("swalloc-cli")
  return try await runChild("/bin/sh", ["-c", script], preload: nil,
                            environment: ["SWALLOC": command],
                            timeout: timeout)
}

@Suite("The swalloc command")
struct CommandTests {
  @Test("--help on the command and every subcommand", arguments: [[], ["run"], ["doctor"], ["version"], ["install"], ["uninstall"]])
  func help(subcommand: [String]) async throws {
    let result = try await runCommand(subcommand + ["--help"])
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardOutput.contains("USAGE: swalloc"), "\(result.summary)")
  }

  @Test("run passes the exit status on, and the handshake proves the preload (--verbose names the mode)",
        arguments: ["default", "secure", "secure-full"])
  func exitStatus(mode: String) async throws {
    let probe = try await FixtureBuilds.shared.build("command_probe.c", as: .c)
    let temporary = try makeTemporaryDirectory("tmpdir")
    defer { try? FileManager.default.removeItem(at: temporary) }
    let modeOption = switch mode {
    case "secure": ["--secure"]
    case "secure-full": ["--secure-level", "full"]
    default: ["--option", "SECURE=0"]
    }
    let result = try await runCommand(
      ["run", "--verbose", "--stats", "--library", try Preload.library()] + modeOption + ["--", probe, "7"],
      environment: ["TMPDIR": temporary.path])
    #expect(!result.signaled && result.status == 7, "\(result.summary)")
    // The handshake FIFO's directory went with the command.
    #expect(try FileManager.default.contentsOfDirectory(atPath: temporary.path).isEmpty, "\(result.summary)")
    expectLine("probe ok", in: result)
    assertSwallocActive(result)
    #expect(result.standardError.contains("loaded into \(probe) (pid "), "\(result.summary)")
    // The handshake names secure mode at both levels; the statistics row gives the level.
    #expect(result.standardError.contains("\(mode == "default" ? "default" : "secure") mode)"), "\(result.summary)")
    if mode != "default" {
      #expect(statisticsValues("secure mode", in: result) == [mode == "secure" ? 1 : 2], "\(result.summary)")
    }
    #expect(result.errorLines.contains("swalloc:   version                    0.1.0"), "\(result.summary)")
    #expect(!result.standardError.contains("did not take"), "\(result.summary)")
  }

  @Test("run dies of the signal that killed the program", arguments: [SIGTERM, SIGSEGV, SIGKILL])
  func signalPassesOn(signal: Int32) async throws {
    let result = try await runCommand(["run", "--stats", "--", "/bin/sh", "-c", "kill -\(signal) $$"])
    #expect(result.signaled && result.status == signal, "\(result.summary)")
  }

  @Test("a SIGTERM sent to swalloc reaches the program, and swalloc then dies of it too")
  func signalForwarded() async throws {
    let result = try await runCommandScript("""
      marker=$(mktemp)
      "$SWALLOC" run -- /bin/sh -c 'echo started > "$1"; exec sleep 30' sh "$marker" &
      pid=$!
      i=0
      while [ ! -s "$marker" ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i + 1)); done
      kill -TERM $pid
      wait $pid
      echo "status=$?"
      cat "$marker"
      rm -f "$marker"
      """)
    #expect(result.succeeded, "\(result.summary)")
    expectLine("started", in: result)
    expectLine("status=143", in: result)  // 128 + SIGTERM: the shell saw swalloc die of SIGTERM
  }

  @Test("stdin reaches the program; stdout is the program's")
  func standardInput() async throws {
    let probe = try await FixtureBuilds.shared.build("command_probe.c", as: .c)
    let result = try await runCommandScript(
      "printf 'first line\\nsecond line\\n' | \"$SWALLOC\" run --stats -- '\(probe)' 0 stdin")
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardOutput == "probe ok\nfirst line\nsecond line\n", "\(result.summary)")
    assertSwallocActive(result)
  }

  @Test("the options become SWALLOC_* variables; --option passes any other; JSON statistics")
  func options() async throws {
    let result = try await runCommand([
      "run", "--secure", "--stats=json", "--purge-delay", "50", "--huge-pages", "transparent", "--locked",
      "--option", "VERBOSE=1", "--", "/bin/sh", "-c", "env | grep '^SWALLOC_' | sort",
    ])
    #expect(result.succeeded, "\(result.summary)")
    for line in ["SWALLOC_HUGE_PAGES=transparent", "SWALLOC_LOCKED=1", "SWALLOC_PURGE_DELAY_MS=50",
                 "SWALLOC_SECURE=1", "SWALLOC_SHOW_STATS=json", "SWALLOC_VERBOSE=1"] {
      expectLine(line, in: result)
    }
    let objects = statisticsJSON(in: result)
    #expect(objects.contains { $0["version"] as? String == "0.1.0" }, "\(result.summary)")
    #expect(!result.standardError.contains("warning"), "\(result.summary)")
  }

  @Test("the flags of the purge ceiling, THP for large blocks, profiling and guarded sampling take effect")
  func newerOptions() async throws {
    let directory = try makeTemporaryDirectory("profile-flags")
    defer { try? FileManager.default.removeItem(at: directory) }
    let prefix = directory.appendingPathComponent("run").path
    let result = try await runCommand([
      "run", "--purge-delay-max", "200", "--huge-pages", "large", "--profile", "on", "--profile-sample", "16K",
      "--guarded-sample", "1000", "--option", "PROFILE_PREFIX=\(prefix)", "--stats", "--",
      "/bin/sh", "-c", "env | grep '^SWALLOC_' | sort",
    ])
    #expect(result.succeeded, "\(result.summary)")
    for line in ["SWALLOC_PURGE_DELAY_MAX_MS=200", "SWALLOC_HUGE_PAGES=large", "SWALLOC_PROFILE=1",
                 "SWALLOC_PROFILE_SAMPLE=16K", "SWALLOC_GUARDED_SAMPLE=1000"] {
      expectLine(line, in: result)
    }
    #expect(!result.standardError.contains("warning"), "\(result.summary)")
    // The library took them: the shell wrote its profile where the prefix says.
    let written = try FileManager.default.contentsOfDirectory(atPath: directory.path)
    #expect(written.contains { $0.hasPrefix("run.") && $0.hasSuffix(".pb.gz") }, "\(written)\n\(result.summary)")
  }

  @Test("bad option values are usage errors (64), before anything runs",
        arguments: [["--purge-delay", "-1"], ["--profile", "always"], ["--huge-reserve", "5G"], ["--huge-reserve", "1G", "--huge-pages", "off"],
                    ["--option", "=1"], ["--stats=xml"]])
  func badOptions(arguments: [String]) async throws {
    let result = try await runCommand(["run"] + arguments + ["--", "/bin/echo", "ran"])
    #expect(!result.signaled && result.status == 64, "\(result.summary)")
    #expect(!result.standardOutput.contains("ran"), "\(result.summary)")
  }

  @Test("a static program: the command says the preload cannot take and did not; the status still passes on")
  func staticProgramDetected() async throws {
    let directory = try makeTemporaryDirectory("static")
    defer { try? FileManager.default.removeItem(at: directory) }
    let program = directory.appendingPathComponent("probe-static").path
    let compile = try await runChild(try Preload.compiler(cxx: false),
                                     ["-static", "-O2", "-o", program, Preload.fixture("command_probe.c")],
                                     preload: nil, timeout: 180)
    guard compile.succeeded else { try skipTest("cannot link statically here (no libc.a?)\n\(compile.summary)") }
    let result = try await runCommand(["run", "--stats", "--", program, "3"])
    #expect(!result.signaled && result.status == 3, "\(result.summary)")
    expectLine("probe ok", in: result)
    #expect(result.standardError.contains("is statically linked"), "\(result.summary)")
    #expect(result.standardError.contains("swalloc: the preload did not take: \(program) ran without Swalloc"),
            "\(result.summary)")
    #expect(statisticsBlocks(in: result.standardError).isEmpty, "\(result.summary)")
  }

  @Test("a setuid program run by another user (nobody): the loader ignores the preload, and the command says so")
  func setuidProgramDetected() async throws {
    guard geteuid() == 0, let setpriv = Preload.findTool("setpriv") else { try skipTest("needs root and setpriv") }
    let probe = try await FixtureBuilds.shared.build("command_probe.c", as: .c)
    let directory = try makeTemporaryDirectory("setuid")
    defer { try? FileManager.default.removeItem(at: directory) }
    let program = directory.appendingPathComponent("probe-setuid").path
    try FileManager.default.copyItem(atPath: probe, toPath: program)
    chmod(directory.path, 0o755)
    chmod(program, 0o4755)  // setuid root: run by nobody, it is in secure-execution mode
    let (command, library) = try commandForOtherUsers(in: directory)
    let result = try await runChild(
      setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "-u", "SWALLOC_LIB", command,
                "run", "--stats", "--library", library, "--", program, "5"],
      preload: nil, environment: ["TMPDIR": "/tmp"], timeout: shortChildTimeout)
    #expect(!result.signaled && result.status == 5, "\(result.summary)")
    expectLine("probe ok", in: result)
    #expect(result.standardError.contains("is setuid"), "\(result.summary)")
    #expect(result.standardError.contains("swalloc: the preload did not take: \(program) ran without Swalloc"),
            "\(result.summary)")
    #expect(statisticsBlocks(in: result.standardError).isEmpty, "\(result.summary)")
  }

  @Test("a missing or unloadable library, a missing program: the command's own statuses")
  func failuresBeforeTheRun() async throws {
    let missing = try await runCommand(["run", "--library", "/nonexistent/libswalloc.so", "--", "/bin/echo", "ran"])
    #expect(!missing.signaled && missing.status == 125, "\(missing.summary)")
    #expect(missing.standardError.contains("libswalloc.so not found"), "\(missing.summary)")
    let notLibrary = try await runCommand(["run", "--library", "/etc/passwd", "--", "/bin/echo", "ran"])
    #expect(!notLibrary.signaled && notLibrary.status == 125, "\(notLibrary.summary)")
    #expect(notLibrary.standardError.contains("not an ELF shared library"), "\(notLibrary.summary)")
    let noProgram = try await runCommand(["run", "--", "no-such-program-swalloc"])
    #expect(!noProgram.signaled && noProgram.status == 127, "\(noProgram.summary)")
    #expect(!missing.standardOutput.contains("ran") && !notLibrary.standardOutput.contains("ran"))
  }

  @Test("doctor on a machine without huge pages: each shortfall with its fix, and nothing changed")
  func doctorWithoutHugePages() async throws {
    let root = try makeTemporaryDirectory("doctor")
    defer { try? FileManager.default.removeItem(at: root) }
    let files = [
      "proc/sys/vm/nr_hugepages": "0\n",
      "proc/meminfo": "MemTotal:        4000000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n",
      "sys/kernel/mm/transparent_hugepage/enabled": "always madvise [never]\n",
      "proc/self/status": "Name:\tswalloc\nCapEff:\t0000000000000000\n",
    ]
    for (path, text) in files {
      let url = root.appendingPathComponent(path)
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try text.write(to: url, atomically: true, encoding: .utf8)
    }
    let result = try await runCommandScript(
      "ulimit -S -l 64 && exec \"$SWALLOC\" doctor --system-root '\(root.path)'")
    #expect(result.succeeded, "\(result.summary)")
    let output = result.standardOutput
    #expect(output.contains("library: ok"), "\(result.summary)")
    #expect(output.contains("version 0.1.0"), "\(result.summary)")
    #expect(output.contains("none reserved (vm.nr_hugepages = 0)"), "\(result.summary)")
    expectLine("  fix: sysctl -w vm.nr_hugepages=256   # as root: reserves 512 MiB more in 2 MiB pages, until reboot",
               in: result)
    #expect(output.contains("mode never"), "\(result.summary)")
    #expect(output.contains("fix: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"), "\(result.summary)")
    #expect(output.contains("RLIMIT_MEMLOCK is 64 KiB"), "\(result.summary)")
    #expect(output.contains("fix: ulimit -l "), "\(result.summary)")
    expectLine("3 shortfalls (the fixes above are not applied)", in: result)
    for (path, text) in files {
      #expect(try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) == text, "\(path) changed")
    }
  }

  @Test("doctor on a machine with huge pages free and THP on madvise reports no shortfall there")
  func doctorWithHugePages() async throws {
    let root = try makeTemporaryDirectory("doctor-ok")
    defer { try? FileManager.default.removeItem(at: root) }
    let files = [
      "proc/sys/vm/nr_hugepages": "64\n",
      "proc/meminfo": "HugePages_Total:      64\nHugePages_Free:       60\nHugepagesize:       2048 kB\n",
      "sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
      "proc/self/status": "CapEff:\t000001ffffffffff\n",
    ]
    for (path, text) in files {
      let url = root.appendingPathComponent(path)
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try text.write(to: url, atomically: true, encoding: .utf8)
    }
    let result = try await runCommand(["doctor", "--system-root", root.path])
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardOutput.contains("60 of 64 free (2 MiB each): up to 120 MiB"), "\(result.summary)")
    expectLine("no shortfalls", in: result)
  }

  @Test("version prints the command's and the library's (the same)")
  func version() async throws {
    let result = try await runCommand(["version"])
    #expect(result.succeeded, "\(result.summary)")
    expectLine("swalloc 0.1.0", in: result)
    #expect(result.outputLines.contains { $0.hasPrefix("library 0.1.0 (") }, "\(result.summary)")
  }

  @Test("install into a temporary prefix, a C program built with pkg-config runs on it, uninstall removes it all")
  func installAndUninstall() async throws {
    let directory = try makeTemporaryDirectory("install")
    defer { try? FileManager.default.removeItem(at: directory) }
    let prefix = directory.appendingPathComponent("prefix").path
    let install = try await runCommand(["install", "--prefix", prefix, "--library", try Preload.library()])
    #expect(install.succeeded, "\(install.summary)")
    for file in ["lib/libswalloc.so", "include/swalloc.h", "lib/pkgconfig/swalloc.pc", "bin/swalloc",
                 "share/swalloc/install-manifest.txt"] {
      #expect(FileManager.default.fileExists(atPath: prefix + "/" + file), "\(file) not installed\n\(install.summary)")
    }

    let pkgConfig = try await runChild(try Preload.tool("pkg-config"), ["--cflags", "--libs", "swalloc"], preload: nil,
                                       environment: ["PKG_CONFIG_PATH": prefix + "/lib/pkgconfig"])
    #expect(pkgConfig.succeeded, "\(pkgConfig.summary)")
    let flags = pkgConfig.standardOutput.split(whereSeparator: \.isWhitespace).map(String.init)
    let source = directory.appendingPathComponent("linked.c")
    try """
      #include <stdio.h>
      #include <stdlib.h>
      #include <string.h>
      #include <swalloc.h>
      int main(void) {
        char *block = malloc(100);
        strcpy(block, "linked");
        swalloc_statistics statistics;
        swalloc_get_statistics(&statistics);
        printf("%s %s %s allocations>0=%d\\n", block, swalloc_version(), SWALLOC_VERSION, statistics.allocations > 0);
        free(block);
        return 0;
      }
      """.write(to: source, atomically: true, encoding: .utf8)
    let program = directory.appendingPathComponent("linked").path
    let compile = try await runChild(try Preload.compiler(cxx: false), [source.path, "-o", program] + flags,
                                     preload: nil, timeout: 180)
    #expect(compile.succeeded, "\(compile.summary)")
    let linked = try await runChild(program, preload: nil)
    #expect(linked.succeeded, "\(linked.summary)")
    expectLine("linked 0.1.0 0.1.0 allocations>0=1", in: linked)

    // The installed command finds the installed library (../lib).
    let installedRun = try await runChild(prefix + "/bin/swalloc", ["run", "--verbose", "--", "/bin/true"], preload: nil)
    #expect(installedRun.succeeded, "\(installedRun.summary)")
    #expect(installedRun.standardError.contains("\(prefix)/lib/libswalloc.so 0.1.0 loaded into /bin/true"),
            "\(installedRun.summary)")

    let uninstall = try await runCommand(["uninstall", "--prefix", prefix])
    #expect(uninstall.succeeded, "\(uninstall.summary)")
    #expect(!FileManager.default.fileExists(atPath: prefix), "\(prefix) left behind\n\(uninstall.summary)")
    let again = try await runCommand(["uninstall", "--prefix", prefix])
    #expect(!again.succeeded && again.standardError.contains("no installation under"), "\(again.summary)")
  }

  @Test("install into a prefix this user cannot write: one plain line, status 125, nothing left behind")
  func installWithoutPermission() async throws {
    guard geteuid() == 0, let setpriv = Preload.findTool("setpriv") else { try skipTest("needs root and setpriv") }
    let prefix = try makeTemporaryDirectory("install-denied")
    defer { try? FileManager.default.removeItem(at: prefix) }
    chmod(prefix.path, 0o755)  // root's: nobody may read it, not write it
    let copies = try makeTemporaryDirectory("install-denied-command")
    defer { try? FileManager.default.removeItem(at: copies) }
    let (command, library) = try commandForOtherUsers(in: copies)
    let result = try await runChild(
      setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "-u", "SWALLOC_LIB", command,
                "install", "--prefix", prefix.path, "--library", library],
      preload: nil, timeout: shortChildTimeout)
    #expect(!result.signaled && result.status == 125, "\(result.summary)")
    #expect(result.errorLines == ["swalloc: cannot create \(prefix.path)/lib: Permission denied (install as root, "
                                  + "or choose another --prefix, e.g. ~/.local)"], "\(result.summary)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: prefix.path).isEmpty, "\(result.summary)")
  }

  @Test("uninstall leaves files and directories that install did not create")
  func uninstallKeepsOthers() async throws {
    let prefix = try makeTemporaryDirectory("install-shared")
    defer { try? FileManager.default.removeItem(at: prefix) }
    try FileManager.default.createDirectory(atPath: prefix.path + "/lib", withIntermediateDirectories: true)
    try "keep".write(toFile: prefix.path + "/lib/other.so", atomically: true, encoding: .utf8)
    #expect(try await runCommand(["install", "--prefix", prefix.path]).succeeded)
    let uninstall = try await runCommand(["uninstall", "--prefix", prefix.path])
    #expect(uninstall.succeeded, "\(uninstall.summary)")
    #expect(FileManager.default.fileExists(atPath: prefix.path + "/lib/other.so"), "\(uninstall.summary)")
    #expect(!FileManager.default.fileExists(atPath: prefix.path + "/bin"), "\(uninstall.summary)")
    #expect(!FileManager.default.fileExists(atPath: prefix.path + "/lib/libswalloc.so"), "\(uninstall.summary)")
  }
}

/// Copies of the built command, library and header laid out as an installation under `directory`
/// (bin/, lib/, include/, readable and searchable by everyone), for tests that run them as another user: the
/// checkout itself may sit under a directory only root may enter (a clone in `mktemp -d`, mode 0700).
func commandForOtherUsers(in directory: URL) throws -> (command: String, library: String) {
  let sources = [("bin", try Preload.buildProduct("swalloc-cli"), "swalloc-cli"),
                 ("lib", try Preload.library(), "libswalloc.so"),
                 ("include", Preload.publicHeaders.appendingPathComponent("swalloc.h").path, "swalloc.h")]
  var copies: [String] = []
  chmod(directory.path, 0o755)
  for (folder, source, name) in sources {
    let target = directory.appendingPathComponent(folder)
    try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
    chmod(target.path, 0o755)
    let copy = target.appendingPathComponent(name).path
    try FileManager.default.copyItem(atPath: source, toPath: copy)
    chmod(copy, 0o755)
    copies.append(copy)
  }
  return (copies[0], copies[1])
}
