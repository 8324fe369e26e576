// ProfileExports: the Swift side of swalloc_profile_dump (Sources/SwallocExports/Profile.c), as a hidden
// `swalloc_impl_` symbol. Samples are taken in the core's slow path (SamplePoints.swift).
import CShim

@c(swalloc_impl_profile_note_sample)
func exportedProfileNoteSample(
  _ frames: UnsafePointer<UInt>, _ count: Int32, _ byteCount: Int, _ charged: Int, _ block: UnsafeMutableRawPointer,
  _ weights: UnsafeMutablePointer<Int64>
) -> Int32 {
  if !Profile.isActive { return -1 }
  let (number, weight) = Profile.countSample(byteCount: byteCount, chargedByteCount: charged, frames: frames,
                                             frameCount: Int(count))
  weights[0] = Int64(weight.byteCount)
  weights[1] = Int64(weight.objects)
  swalloc_probe_sample(block, byteCount, weight.byteCount)
  return Int32(truncatingIfNeeded: number)
}

@c(swalloc_impl_profile_note_release)
func exportedProfileNoteRelease(
  _ block: UnsafeMutableRawPointer, _ stack: Int32, _ bytes: Int64, _ objects: Int64, _ byteCount: Int
) {
  Profile.releaseSample(stack: Int(stack), bytes: Int(bytes), objects: Int(objects))
  swalloc_probe_free(block, byteCount)
}

@c(swalloc_impl_profile_dump)
func exportedProfileDump(_ path: UnsafePointer<CChar>?) -> Int32 {
  let result = Profile.dump(to: path)
  if result == 0 { return 0 }
  swalloc_errno_set(result)
  return -1
}
