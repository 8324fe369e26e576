// swift-tools-version:6.1
// Micro-benchmarks of the allocation paths Swift code takes (swift_allocObject, Array and String growth,
// UnsafeMutableRawPointer.allocate), timed through the real malloc symbol. Run under each allocator with
// LD_PRELOAD: see Benchmarks/README.md. `traits: []` keeps ordo-one/benchmark's malloc interposer out, so
// that the allocator under test is the one that answers.
import PackageDescription

let package = Package(
  name: "SwallocMicroBenchmarks",
  dependencies: [
    .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: [])
  ],
  targets: [
    .executableTarget(
      name: "SwiftAllocation",
      dependencies: [.product(name: "Benchmark", package: "benchmark")],
      path: "Benchmarks/SwiftAllocation",
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")])
  ]
)
