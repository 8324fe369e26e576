// swift-tools-version:6.1
// Swalloc: a size-class slab allocator in Swift, shipped as an LD_PRELOAD library (libswalloc.so),
// with the same core built in normal Swift for in-process tests and the Swift API.
import PackageDescription

let package = Package(
  name: "Swalloc",
  products: [
    // libswalloc.so: the preload library. Embedded Swift core + C shim + C++ operators; needs libc (and libstdc++).
    .library(name: "swalloc", type: .dynamic, targets: ["SwallocPreload"]),
    // The Swift API: first-class heaps, arenas, statistics and options (normal Swift; see the README).
    .library(name: "Swalloc", targets: ["Swalloc"]),
    .executable(name: "swalloc-example", targets: ["swalloc-example"]),
    .executable(name: "swalloc-stress", targets: ["swalloc-stress"]),
    // The main job: Swalloc against jemalloc, glibc, mimalloc and tcmalloc (Benchmarks/README.md).
    .executable(name: "swalloc-bench", targets: ["swalloc-bench"]),
    // The `swalloc` command (run, doctor, version, install, uninstall); `swalloc install` puts it on the PATH
    // as `swalloc` (SwiftPM needs product names distinct from the library product `swalloc`).
    .executable(name: "swalloc-cli", targets: ["swalloc-cli"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
  ],
  targets: [
    // Only what Swift cannot express: libc headers, the initial-exec TLS heap slot, the static empty heap,
    // the segment map, errno, and the constructor / atfork / thread-exit hooks that forward to Swift.
    .target(name: "CShim", path: "CShim"),

    // The allocator core in normal Swift plus the Swift API (Sources/SwallocCore/API): module `Swalloc`.
    // No unsafe flags, so that other packages can depend on it by version.
    // Imports are internal: a client of `Swalloc` sees neither CShim nor Glibc through it.
    .target(
      name: "Swalloc", dependencies: ["CShim"], path: "Sources/SwallocCore",
      swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]),

    // The public C names (default visibility, forwarding to the Swift implementation) and the 20 C++
    // operator new/delete variants. Linked only into libswalloc.so.
    // No libstdc++: the two functions the operators need from it are weak references (Operators.cpp).
    .target(
      name: "SwallocExports", dependencies: ["CShim"],
      cxxSettings: [.unsafeFlags(["-fno-exceptions", "-fno-rtti"])]),

    // The same core sources (Sources/SwallocPreload/Core is a symlink to ../SwallocCore) built as Embedded
    // Swift, plus the C ABI. Runtime-free: ldd shows libc only.
    .target(
      name: "SwallocPreload", dependencies: ["CShim", "SwallocExports"],
      exclude: ["exports.map", "Core/API"],
      swiftSettings: [
        .enableExperimentalFeature("Embedded"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .unsafeFlags(["-wmo", "-O", "-Xcc", "-fno-stack-protector", "-Xcc", "-fomit-frame-pointer"]),
      ],
      linkerSettings: [
        .unsafeFlags([
          "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/SwallocPreload/exports.map",
          "-Xlinker", "-z", "-Xlinker", "defs",
          // A program linked against the library and run with it preloaded as well loads one copy: the
          // loader matches the DT_NEEDED name against this soname.
          "-Xlinker", "-soname=libswalloc.so",
          // The stack unwinder of the heap profiler (Backtrace.swift): libgcc's, linked statically with its
          // symbols local, so that ldd still shows libc alone.
          "-Xlinker", "-l:libgcc_eh.a", "-Xlinker", "--exclude-libs=libgcc_eh.a",
        ])
      ]),

    // Misuse of the Swift API's heaps, run by the tests in a child process (secure mode aborts).
    .executableTarget(name: "swalloc-api-misuse", dependencies: ["Swalloc"], path: "Tests/APIMisuse"),

    // A C stress program: random sizes, threads, cross-thread frees, contents verified.
    .executableTarget(name: "swalloc-stress", path: "Sources/swalloc-stress"),

    // The benchmark driver: builds Benchmarks/Workloads and compares allocators side by side.
    .executableTarget(
      name: "swalloc-bench",
      dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
      path: "Sources/swalloc-bench"),

    // The `swalloc` command (README: The swalloc command). Swalloc gives it SwallocVersion.
    .executableTarget(
      name: "swalloc-cli",
      dependencies: ["Swalloc", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      path: "Sources/swalloc-cli"),

    // A runnable tour of the Swift API.
    .executableTarget(name: "swalloc-example", dependencies: ["Swalloc"], path: "Sources/swalloc-example"),

    // What the in-process test targets share (running a body on new pthreads).
    .target(name: "SwallocTestSupport", path: "Tests/SwallocTestSupport"),
    .testTarget(name: "SwallocCoreTests", dependencies: ["Swalloc", "CShim", "SwallocTestSupport"]),
    .testTarget(name: "SwallocTests", dependencies: ["Swalloc", "SwallocTestSupport"]),
    .testTarget(
      name: "SwallocPreloadTests",
      exclude: ["Fixtures"]),
  ]
)
