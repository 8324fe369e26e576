// ProfileExports: the Swift side of swalloc_profile_dump (Sources/SwallocExports/Profile.c), as a hidden
// `swalloc_impl_` symbol. Samples are taken in the core's slow path (SamplePoints.swift).
import CShim

@c(swalloc_impl_profile_dump)
func exportedProfileDump(_ path: UnsafePointer<CChar>?) -> Int32 {
  let result = Profile.dump(to: path)
  if result == 0 { return 0 }
  swalloc_errno_set(result)
  return -1
}
