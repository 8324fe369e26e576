// Sampler: when the heap profiler takes a sample, and what a sample stands for. Each thread counts down the
// bytes it allocates (the countdown in its heap, counted by the slow path as it hands out free lists:
// SamplePoints.swift); at zero the allocation is sampled and a new countdown is drawn from an
// exponential distribution of mean SWALLOC_PROFILE_SAMPLE bytes. Sampling is then a Poisson process over
// allocated bytes, so a block of `s` bytes is sampled with probability 1 - exp(-s/rate), and each sample
// stands for s / (1 - exp(-s/rate)) bytes and 1 / (1 - exp(-s/rate)) objects: unbiased estimates (the weighting
// of tcmalloc and Go). The logarithm and exponential are computed here: libm is not a dependency.
import CShim

enum Sampler {
  /// Object counts are kept in fixed point with this many fractional bits (a sample of a 16-byte block
  /// stands for about 32 768 objects at the default rate, a huge block for one).
  static let objectShift = 16

  /// The mean number of bytes between samples (SWALLOC_PROFILE_SAMPLE).
  static var rate: Int { Options.profileSampleByteCount }

  /// The natural logarithm of `x` > 0: x = m * 2^e with m in [1, 2), ln m = 2 atanh((m - 1) / (m + 1)) by its
  /// series (t < 1/3: 14 terms leave an error below 1e-14).
  static func naturalLogarithm(_ x: Double) -> Double {
    let bits = x.bitPattern
    let exponent = Int((bits &>> 52) & 0x7FF) &- 1023
    let mantissa = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
    let t = (mantissa - 1) / (mantissa + 1)
    let t2 = t * t
    var term = t
    var sum = 0.0
    var denominator = 1.0
    for _ in 0..<14 {
      sum += term / denominator
      term *= t2
      denominator += 2
    }
    return 2 * sum + Double(exponent) * 0.693_147_180_559_945_3
  }

  /// exp(y) for y <= 0: 2^k * exp(r), k = round(y / ln 2), |r| <= ln 2 / 2, exp(r) by its Taylor series.
  static func exponential(_ y: Double) -> Double {
    if y < -700 { return 0 }
    let k = Double(Int(y / 0.693_147_180_559_945_3 - 0.5))  // truncation rounds: y < 0 (no libm call)
    let r = y - k * 0.693_147_180_559_945_3
    var term = 1.0
    var sum = 1.0
    var n = 1.0
    for _ in 0..<16 {
      term *= r / n
      sum += term
      n += 1
    }
    return sum * Double(bitPattern: UInt64(1023 + Int(k)) &<< 52)
  }

  /// 1 - exp(-x) for x >= 0, accurate for small x (where the subtraction would cancel).
  static func samplingProbability(_ x: Double) -> Double {
    if x > 40 { return 1 }
    if x < 0.5 {
      // x - x^2/2! + x^3/3! - ...
      var term = x
      var sum = 0.0
      var n = 1.0
      for _ in 0..<24 {
        sum += term
        n += 1
        term *= -x / n
      }
      return sum
    }
    return 1 - exponential(-x)
  }

  /// What a sample of a `byteCount`-byte block stands for: bytes, and objects in fixed point.
  /// `chargedByteCount` is what the countdown counted for the allocation (its size class's block size, which
  /// sets its probability of being sampled); `byteCount` what the program asked for.
  static func weight(byteCount: Int, chargedByteCount: Int) -> (byteCount: Int, objects: Int) {
    let size = Double(Swift.max(byteCount, 1))
    let probability = samplingProbability(Double(Swift.max(chargedByteCount, 1)) / Double(rate))
    let bytes = size / probability
    let objects = Double(1 << objectShift) / probability
    return (bytes < 9.0e18 ? Int(bytes) : Int.max / 2, objects < 9.0e18 ? Int(objects) : Int.max / 2)
  }

  /// Bytes until the next sample, drawn with the calling thread's generator.
  static func nextByteCountdown() -> Int {
    Int(truncatingIfNeeded: nextCountdown(swalloc_sampler_state()))
  }

  /// The next countdown of the thread whose sampler state is `state`: -ln(U) * rate, U uniform in (0, 1].
  static func nextCountdown(_ state: UnsafeMutablePointer<swalloc_sampler>) -> UInt64 {
    var random = state.pointee.random
    if random == 0 {
      random = UInt64(swalloc_random_word()) ^ UInt64(UInt(bitPattern: state)) ^ swalloc_now_ms() | 1
    }
    // xorshift64*
    random ^= random &>> 12
    random ^= random &<< 25
    random ^= random &>> 27
    state.pointee.random = random
    let bits = random &* 0x2545_F491_4F6C_DD1D
    let uniform = (Double(bits &>> 11) + 1) * (1.0 / 9_007_199_254_740_992.0)
    let countdown = -naturalLogarithm(uniform) * Double(rate)
    return countdown < 1 ? 1 : countdown > 1.0e18 ? UInt64(1.0e18) : UInt64(countdown)
  }
}
