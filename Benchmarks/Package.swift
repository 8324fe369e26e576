// swift-tools-version:6.1
// Micro-benchmarks of the allocation paths Swift code takes (swift_allocObject, Array and String growth,
// UnsafeMutableRawPointer.allocate), timed through the real malloc symbol, and the Swift API's heaps and arenas. Run under each allocator with
// LD_PRELOAD: see Benchmarks/README.md. `traits: []` keeps ordo-one/benchmark's malloc interposer out, so
// that the allocator under test is the one that answers.
import PackageDescription

let package = Package(
  name: "SwallocMicroBenchmarks",
  dependencies: [
    .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: []),
    // The Swift API (product `Swalloc`) of the package one level up.
    .package(name: "Swalloc", path: ".."),
  ],
  targets: [
    .executableTarget(
      name: "SwiftAllocation",
      dependencies: [.product(name: "Benchmark", package: "benchmark")],
      path: "Benchmarks/SwiftAllocation",
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    // SwallocHeap and SwallocArena against UnsafeMutableRawPointer.allocate (the process's malloc).
    .executableTarget(
      name: "SwallocAPI",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "Swalloc", package: "Swalloc"),
      ],
      path: "Benchmarks/SwallocAPI",
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
  ]
)
