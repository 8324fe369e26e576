// glibc's introspection calls (mallinfo2, mallinfo, mallopt, malloc_trim, malloc_stats, malloc_info) and
// Swalloc's own C API (swalloc_get_statistics, swalloc_print_statistics, swalloc_purge), called by a preloaded
// C program through their real names.
import Foundation
import Testing

@Suite("Introspection under the preload")
struct IntrospectionTests {
  private func runIntrospection(
    _ part: String, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> ChildResult {
    let program = try await FixtureBuilds.shared.build("introspection.c", as: .c)
    let result = try await runPreloaded(
      program, [part], environment: environment, timeout: shortChildTimeout, sourceLocation: sourceLocation)
    expectLine("introspection ok: \(part)", in: result, sourceLocation: sourceLocation)
    return result
  }

  @Test("""
    mallinfo2: 1000 x 1000 bytes in uordblks and arena, gone when freed; a 3 MB block in hblks/hblkhd; \
    mallinfo agrees
    """)
  func mallinfo() async throws {
    let result = try await runIntrospection("mallinfo")
    let values = reportedValues(in: result)
    func value(_ key: String) throws -> Int { try #require(values[key], "no \(key)\n\(result.summary)") }

    let allocatedUsed = try value("mallinfo2.allocated.uordblks")
    let allocatedArena = try value("mallinfo2.allocated.arena")
    #expect(allocatedUsed >= 1000 * 1000, "uordblks \(allocatedUsed) with 1000 x 1000 bytes live\n\(result.summary)")
    #expect(allocatedArena >= allocatedUsed, "arena \(allocatedArena) < uordblks \(allocatedUsed)\n\(result.summary)")
    let freedUsed = try value("mallinfo2.freed.uordblks")
    #expect(freedUsed <= allocatedUsed - 900_000,
            """
            uordblks fell only from \(allocatedUsed) to \(freedUsed) when 1000 x 1000 bytes were freed
            \(result.summary)
            """)

    let hugeBlocks = try value("mallinfo2.huge.hblks")
    let hugeBytes = try value("mallinfo2.huge.hblkhd")
    #expect(hugeBlocks >= 1 && hugeBytes >= 3 << 20,
            "hblks \(hugeBlocks), hblkhd \(hugeBytes) with a 3 MB block live\n\(result.summary)")
    let freedHugeBlocks = try value("mallinfo2.huge-freed.hblks")
    let freedHugeBytes = try value("mallinfo2.huge-freed.hblkhd")
    #expect(freedHugeBlocks == hugeBlocks - 1 && freedHugeBytes <= hugeBytes - (3 << 20),
            """
            hblks \(hugeBlocks) -> \(freedHugeBlocks), hblkhd \(hugeBytes) -> \(freedHugeBytes) when the 3 MB block \
            was freed
            \(result.summary)
            """)

    // mallinfo, called right after mallinfo2 with nothing allocated between, has the same figures (all < 2 GiB).
    for label in ["start", "allocated", "freed", "huge", "huge-freed"] {
      for field in ["arena", "ordblks", "uordblks", "fordblks", "hblks", "hblkhd"] {
        let wide = try value("mallinfo2.\(label).\(field)")
        let narrow = try value("mallinfo.\(label).\(field)")
        #expect(narrow == wide,
                "\(label): mallinfo().\(field) \(narrow), mallinfo2().\(field) \(wide)\n\(result.summary)")
      }
    }
  }

  @Test("mallopt answers 1 for M_TRIM_THRESHOLD, M_MMAP_THRESHOLD and, as glibc does, an unknown 12345; malloc_trim(0) is 0 or 1")
  func malloptAndMallocTrim() async throws {
    let result = try await runIntrospection("mallopt")
    let values = reportedValues(in: result)
    #expect(values["mallopt.M_TRIM_THRESHOLD"] == 1, "\(result.summary)")
    #expect(values["mallopt.M_MMAP_THRESHOLD"] == 1, "\(result.summary)")
    #expect(values["mallopt.unknown"] == 1, "\(result.summary)")
    let trim = try #require(values["malloc_trim.result"], "\(result.summary)")
    #expect(trim == 0 || trim == 1, "malloc_trim(0) returned \(trim)\n\(result.summary)")
  }

  @Test("""
    malloc_stats prints the child's statistics table on stderr when called (plus the exit table with \
    SWALLOC_SHOW_STATS=1)
    """, arguments: [false, true])
  func mallocStats(showStatisticsAtExit: Bool) async throws {
    let result = try await runIntrospection(
      "malloc-stats", environment: ["SWALLOC_SHOW_STATS": showStatisticsAtExit ? "1" : "0"])
    let pid = try #require(reportedValues(in: result)["process.pid"], "\(result.summary)")
    let blocks = statisticsBlocks(in: result.standardError)
    #expect(blocks.count == (showStatisticsAtExit ? 2 : 1), "\(blocks.count) statistics blocks\n\(result.summary)")
    #expect(blocks.allSatisfy { $0.pid == pid }, "a block of another process than \(pid)\n\(result.summary)")
    // The first table comes between the markers the fixture prints around the call.
    let lines = result.errorLines
    let before = lines.firstIndex(of: "before malloc_stats")
    let table = lines.firstIndex { $0.hasPrefix("swalloc: statistics (pid ") }
    let after = lines.firstIndex(of: "after malloc_stats")
    #expect(before != nil && table != nil && after != nil && before! < table! && table! < after!,
            "malloc_stats' table is not between the markers around the call\n\(result.summary)")
  }

  @Test("""
    malloc_info(0, stdout) writes <malloc version="swalloc-1">...</malloc> in order; malloc_info(1, ...) returns \
    EINVAL, as glibc does
    """)
  func mallocInfo() async throws {
    let result = try await runIntrospection("malloc-info")
    let lines = result.outputLines
    let before = try #require(lines.firstIndex(of: "before malloc_info"), "\(result.summary)")
    let returned = try #require(lines.firstIndex(of: "malloc_info(0, stdout) = 0"),
                                "malloc_info(0, stdout) did not return 0\n\(result.summary)")
    try #require(before < returned, "\(result.summary)")
    let xml = lines[(before + 1)..<returned].joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(xml.hasPrefix("<malloc version=\"swalloc-1\">") && xml.hasSuffix("</malloc>"),
            "malloc_info wrote, between the fixture's lines:\n\(xml)\n\(result.summary)")
    #expect(lines[(before + 1)..<returned].allSatisfy { $0.isEmpty || ($0.hasPrefix("<") && $0.hasSuffix(">")) },
            "malloc_info wrote lines that are not XML elements\n\(result.summary)")
    // The failed call writes nothing.
    #expect(returned + 1 < lines.count && lines[returned + 1] == "malloc_info(1, stdout) = 22",
            "\(result.summary)")
  }

  @Test("""
    swalloc_get_statistics counts 1000 mallocs and frees; swalloc_print_statistics(1) prints one JSON line; \
    swalloc_purge returns bytes
    """)
  func swallocAPI() async throws {
    // A long purge delay leaves the freed pages for swalloc_purge to give back.
    let result = try await runIntrospection("swalloc-api", environment: ["SWALLOC_PURGE_DELAY_MS": "3600000"])
    let values = reportedValues(in: result)
    func value(_ key: String) throws -> Int { try #require(values[key], "no \(key)\n\(result.summary)") }

    let allocationsBefore = try value("statistics.before.allocations")
    let allocations = try value("statistics.allocated.allocations")
    #expect(allocations - allocationsBefore >= 1000,
            "allocations went from \(allocationsBefore) to \(allocations) over 1000 mallocs\n\(result.summary)")
    let liveBefore = try value("statistics.before.live_bytes")
    let live = try value("statistics.allocated.live_bytes")
    #expect(live - liveBefore >= 1000 * 100,
            "live_bytes went from \(liveBefore) to \(live) over 1000 mallocs of 100 bytes\n\(result.summary)")
    let mapped = try value("statistics.allocated.mapped_bytes")
    #expect(mapped >= live, "mapped_bytes \(mapped) < live_bytes \(live)\n\(result.summary)")
    let resident = try value("statistics.allocated.resident_bytes")
    #expect(resident > 0, "resident_bytes \(resident)\n\(result.summary)")
    let freesBefore = try value("statistics.allocated.frees")
    let frees = try value("statistics.freed.frees")
    #expect(frees - freesBefore >= 1000,
            "frees went from \(freesBefore) to \(frees) over 1000 frees\n\(result.summary)")
    let allocationsAfterFrees = try value("statistics.freed.allocations")
    #expect(frees <= allocationsAfterFrees, "frees \(frees) > allocations \(allocationsAfterFrees)\n\(result.summary)")

    let objects = statisticsJSON(in: result)
    #expect(objects.count == 1,
            "\(objects.count) JSON lines from swalloc_print_statistics(1), expected 1\n\(result.summary)")
    if let object = objects.first {
      let pid = try value("process.pid")
      expectStatisticsJSON(object, pid: pid, in: result)
      let jsonAllocations = object["allocations"] as? Int ?? 0
      #expect(jsonAllocations >= allocations,
              "JSON allocations \(jsonAllocations) after \(allocations)\n\(result.summary)")
    }

    let purged = try value("swalloc_purge.bytes")
    #expect(purged > 0, "swalloc_purge() gave back nothing after 32 MB of blocks were freed\n\(result.summary)")
  }
}
