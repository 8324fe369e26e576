// swift-tools-version:6.1
// Swalloc: a size-class slab allocator in Swift, shipped as an LD_PRELOAD library (libswalloc.so),
// with the same core built in normal Swift for in-process tests and the Swift API.
import PackageDescription

/// The C names libswalloc.so exports, each an alias of the `swalloc_` function that implements it.
/// `--defsym` makes the alias at link time: the exported `malloc` *is* `swalloc_malloc`, with no extra jump.
let cAliases: [(name: String, target: String)] = [
  ("malloc", "swalloc_malloc"), ("__libc_malloc", "swalloc_malloc"),
  ("free", "swalloc_free"), ("__libc_free", "swalloc_free"), ("cfree", "swalloc_free"),
  ("calloc", "swalloc_calloc"), ("__libc_calloc", "swalloc_calloc"),
  ("realloc", "swalloc_realloc"), ("__libc_realloc", "swalloc_realloc"),
  ("reallocarray", "swalloc_reallocarray"),
  ("posix_memalign", "swalloc_posix_memalign"), ("__posix_memalign", "swalloc_posix_memalign"),
  ("aligned_alloc", "swalloc_aligned_alloc"),
  ("memalign", "swalloc_memalign"), ("__libc_memalign", "swalloc_memalign"),
  ("valloc", "swalloc_valloc"), ("__libc_valloc", "swalloc_valloc"),
  ("pvalloc", "swalloc_pvalloc"), ("__libc_pvalloc", "swalloc_pvalloc"),
  ("malloc_usable_size", "swalloc_malloc_usable_size"),
  ("free_sized", "swalloc_free_sized"),
  ("free_aligned_sized", "swalloc_free_aligned_sized"),
]
let aliasFlags = cAliases.flatMap { ["-Xlinker", "--defsym=\($0.name)=\($0.target)"] }

let package = Package(
  name: "Swalloc",
  products: [
    // libswalloc.so: the preload library. Embedded Swift core + C shim + C++ operators; needs libc (and libstdc++).
    .library(name: "swalloc", type: .dynamic, targets: ["SwallocPreload"]),
    .executable(name: "swalloc-stress", targets: ["swalloc-stress"]),
  ],
  targets: [
    // Only what Swift cannot express: libc headers, the initial-exec TLS heap slot, the static empty heap,
    // the segment map, errno, and the constructor / atfork / thread-exit hooks that forward to Swift.
    .target(name: "CShim", path: "CShim"),

    // The allocator core in normal Swift (tests, Swift API). Optimized in every configuration: a -Onone build
    // instantiates generic metadata, which would re-enter malloc (research/swift-feasibility.md section 1).
    .target(
      name: "SwallocCore", dependencies: ["CShim"],
      swiftSettings: [.unsafeFlags(["-O", "-enforce-exclusivity=unchecked"])]),

    // C++ operator new/delete (20 variants). Linked only into libswalloc.so.
    .target(name: "SwallocCxx", linkerSettings: [.linkedLibrary("stdc++")]),

    // The same core sources (Sources/SwallocPreload/Core is a symlink to ../SwallocCore) built as Embedded
    // Swift, plus the C ABI. Runtime-free: ldd shows libc and libstdc++ only.
    .target(
      name: "SwallocPreload", dependencies: ["CShim", "SwallocCxx"],
      exclude: ["exports.map"],
      swiftSettings: [
        .enableExperimentalFeature("Embedded"),
        .unsafeFlags(["-wmo", "-O", "-Xcc", "-fno-stack-protector", "-Xcc", "-fomit-frame-pointer"]),
      ],
      linkerSettings: [
        .unsafeFlags(aliasFlags + [
          "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/SwallocPreload/exports.map",
          "-Xlinker", "-z", "-Xlinker", "defs",
        ])
      ]),

    // A C stress program: random sizes, threads, cross-thread frees, contents verified.
    .executableTarget(name: "swalloc-stress", path: "Sources/swalloc-stress"),

    .testTarget(name: "SwallocCoreTests", dependencies: ["SwallocCore", "CShim"]),
    .testTarget(
      name: "SwallocPreloadTests",
      exclude: ["Fixtures"]),
  ]
)
