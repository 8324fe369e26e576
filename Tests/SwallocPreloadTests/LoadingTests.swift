// How swalloc gets loaded and when it is first called: a dlopen'ed plugin that allocates in its constructor
// and across the boundary, libswalloc.so itself dlopen'ed by a program that is not preloaded, and malloc in
// .preinit_array and constructors before main.
import Foundation
import Testing

@Suite("Loading under the preload")
struct LoadingTests {
  @Test("a dlopen'ed library allocates in its constructor, functions and destructor, ten load/unload rounds")
  func dlopenPlugin() async throws {
    let plugin = try await FixtureBuilds.shared.build("plugin.c", as: .sharedLibrary)
    let program = try await FixtureBuilds.shared.build("dlopen_plugin.c", as: .c)
    let result = try await runPreloaded(program, [plugin])
    expectLine("swalloc active", in: result)
    expectLine("dlopen ok: 10 rounds", in: result)
  }

  @Test("libswalloc.so dlopen'ed (RTLD_NOW) by a program that is not preloaded serves swalloc_malloc")
  func dlopenLibrarySelf() async throws {
    let program = try await FixtureBuilds.shared.build("dlopen_library.c", as: .c)
    // Not preloaded: the proof of activity is that dlsym found the swalloc_ symbols and they worked.
    let result = try await runChild(
      program, [try Preload.library()], preload: nil, environment: ["SWALLOC_SHOW_STATS": "1"])
    #expect(result.succeeded, "\(result.summary)")
    expectLine("swalloc_malloc found", in: result)
    expectLine("swalloc_free found", in: result)
    expectLine("swalloc_malloc_usable_size found", in: result)
    expectLine("dlopen library ok", in: result)
  }

  @Test("malloc, calloc, realloc, posix_memalign in .preinit_array and constructors, and after main")
  func mallocBeforeMain() async throws {
    let program = try await FixtureBuilds.shared.build("early_malloc.c", as: .c)
    let result = try await runPreloaded(program)
    expectLine("swalloc active", in: result)
    expectLine("early malloc ok: 3 stages before main", in: result)
    expectLine("malloc in an atexit handler ok", in: result)
    expectLine("malloc in a destructor ok", in: result)
  }
}
