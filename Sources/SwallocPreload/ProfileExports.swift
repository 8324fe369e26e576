// ProfileExports: the Swift side of the heap profiler's C entry points (Sources/SwallocExports/Profile.c), as
// hidden `swalloc_impl_` symbols: whether to take a sample, the sampled allocation itself, and
// swalloc_profile_dump.
import CShim

/// A thread's countdown ran out: draws the next one, and says whether to sample this allocation (not the
/// thread's very first, which only seeds its generator, and never inside the profiler or a nested call).
/// When it returns 1 the thread is marked busy until `exportedProfileAllocate` returns.
@c(swalloc_impl_profile_begin)
func exportedProfileBegin() -> Int32 {
  let state = swalloc_sampler_state()
  let first = state.pointee.random == 0
  state.pointee.countdown = Sampler.nextCountdown(state)
  if first || state.pointee.busy != 0 || !Profile.isActive { return 0 }
  state.pointee.busy = 1
  return 1
}

/// The sampled allocation: `kind` 0 malloc, 1 calloc (zeroed), 3 aligned to `alignment`. `frames` is the
/// stack the C entry point captured.
@c(swalloc_impl_profile_allocate)
func exportedProfileAllocate(
  _ kind: Int32, _ pointer: UnsafeMutableRawPointer?, _ byteCount: Int, _ alignment: Int,
  _ frames: UnsafePointer<UInt>, _ frameCount: Int32
) -> UnsafeMutableRawPointer? {
  let block = Profile.allocateSampled(kind: kind, pointer, byteCount: byteCount, alignment: alignment,
                                      frames: frames, frameCount: Int(frameCount))
  swalloc_sampler_state().pointee.busy = 0
  return block
}

/// A sampled realloc: `block` is the new block realloc returned (Profile.adopt).
@c(swalloc_impl_profile_adopt)
func exportedProfileAdopt(
  _ block: UnsafeMutableRawPointer, _ byteCount: Int, _ frames: UnsafePointer<UInt>, _ frameCount: Int32
) -> UnsafeMutableRawPointer {
  let result = Profile.adopt(block, byteCount: byteCount, frames: frames, frameCount: Int(frameCount))
  swalloc_sampler_state().pointee.busy = 0
  return result
}

/// realloc kept `block` in place: 1 when it was a sampled block (now out of the live figures).
@c(swalloc_impl_profile_forget)
func exportedProfileForget(_ block: UnsafeMutableRawPointer) -> Int32 { Profile.forget(block) ? 1 : 0 }

@c(swalloc_impl_profile_dump)
func exportedProfileDump(_ path: UnsafePointer<CChar>?) -> Int32 {
  let result = Profile.dump(to: path)
  if result == 0 { return 0 }
  swalloc_errno_set(result)
  return -1
}
