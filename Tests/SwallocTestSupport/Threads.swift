// Helpers shared by the in-process test targets.
import Glibc

/// Runs `body` on `count` new pthreads (each with its own heap) and waits for them.
public func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  final class Box: @unchecked Sendable {
    let body: @Sendable (Int) -> Void
    let index: Int
    init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
  }
  var threads: [pthread_t] = []
  for index in 0..<count {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body, index)).toOpaque()
    let created = pthread_create(&thread, nil, { raw in
      let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
      box.body(box.index)
      return nil
    }, box)
    precondition(created == 0)
    threads.append(thread)
  }
  for thread in threads { pthread_join(thread, nil) }
}
