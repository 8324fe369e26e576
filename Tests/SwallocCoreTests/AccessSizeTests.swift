import CShim
import Testing

/// The access-size decoder of guarded sampling's fault reports (CShim/AccessSize.c), on the encodings
/// compilers and glibc's string functions emit. The encodings are the assembler's (GNU as, AT&T syntax in
/// the comments).
@Suite("Access size decoder")
struct AccessSizeTests {
  static let cases: [(bytes: [UInt8], size: Int32, what: String)] = [
    ([0x88, 0x07], 1, "mov %al,(%rdi)"),
    ([0xC6, 0x47, 0x10, 0x01], 1, "movb $1,16(%rdi)"),
    ([0x0F, 0xB6, 0x07], 1, "movzbl (%rdi),%eax"),
    ([0x0F, 0xBF, 0x07], 2, "movswl (%rdi),%eax"),
    ([0x66, 0x89, 0x07], 2, "mov %ax,(%rdi)"),
    ([0x89, 0x07], 4, "mov %eax,(%rdi)"),
    ([0x8B, 0x47, 0x08], 4, "mov 8(%rdi),%eax"),
    ([0x48, 0x89, 0x07], 8, "mov %rax,(%rdi)"),
    ([0x48, 0xC7, 0x47, 0x10, 0x01, 0x00, 0x00, 0x00], 8, "movq $1,16(%rdi)"),
    ([0x4C, 0x8B, 0x04, 0xC7], 8, "mov (%rdi,%rax,8),%r8"),
    ([0x48, 0x63, 0x07], 4, "movslq (%rdi),%rax"),
    ([0x48, 0x83, 0x07, 0x01], 8, "addq $1,(%rdi)"),
    ([0x80, 0x3F, 0x00], 1, "cmpb $0,(%rdi)"),
    ([0x3B, 0x07], 4, "cmp (%rdi),%eax"),
    ([0xF0, 0x48, 0x0F, 0xB1, 0x17], 8, "lock cmpxchg %rdx,(%rdi)"),
    ([0xF0, 0x48, 0x0F, 0xC1, 0x07], 8, "lock xadd %rax,(%rdi)"),
    ([0xFF, 0x07], 4, "incl (%rdi)"),
    ([0xFF, 0x17], 8, "call *(%rdi)"),
    ([0xF3, 0xAA], 1, "rep stos %al,(%rdi)"),
    ([0xF3, 0x48, 0xA5], 8, "rep movsq"),
    ([0x0F, 0x11, 0x07], 16, "movups %xmm0,(%rdi)"),
    ([0xF3, 0x0F, 0x6F, 0x07], 16, "movdqu (%rdi),%xmm0"),
    ([0x66, 0x0F, 0x7F, 0x07], 16, "movdqa %xmm0,(%rdi)"),
    ([0xF2, 0x0F, 0x10, 0x07], 8, "movsd (%rdi),%xmm0"),
    ([0xF3, 0x0F, 0x11, 0x07], 4, "movss %xmm0,(%rdi)"),
    ([0x66, 0x0F, 0xD6, 0x07], 8, "movq %xmm0,(%rdi)"),
    ([0x66, 0x0F, 0x74, 0x07], 16, "pcmpeqb (%rdi),%xmm0"),
    ([0xC5, 0xFE, 0x6F, 0x07], 32, "vmovdqu (%rdi),%ymm0"),
    ([0xC5, 0xFE, 0x7F, 0x47, 0xE0], 32, "vmovdqu %ymm0,-32(%rdi)"),
    ([0xC5, 0xFA, 0x6F, 0x07], 16, "vmovdqu (%rdi),%xmm0"),
    ([0xC5, 0xF8, 0x11, 0x07], 16, "vmovups %xmm0,(%rdi)"),
    ([0xC5, 0xFD, 0x74, 0x0F], 32, "vpcmpeqb (%rdi),%ymm0,%ymm1"),
    ([0xC4, 0xE2, 0x7D, 0x78, 0x07], 1, "vpbroadcastb (%rdi),%ymm0"),
    ([0xC4, 0xC1, 0x7E, 0x7F, 0x00], 32, "vmovdqu %ymm0,(%r8)"),
    ([0x62, 0xF1, 0xFE, 0x48, 0x6F, 0x07], 64, "vmovdqu64 (%rdi),%zmm0"),
    ([0x62, 0xE1, 0xFE, 0x28, 0x7F, 0x07], 32, "vmovdqu64 %ymm16,(%rdi)"),
    ([0x0F, 0x0B], 0, "ud2 (no memory operand it knows)"),
    ([0xE8, 0x00, 0x00, 0x00, 0x00], 0, "call rel32"),
  ]

  @Test("the memory operand's size of loads, stores, arithmetic, string and vector instructions")
  func sizes() {
    for (bytes, size, what) in Self.cases {
      // Padding after the instruction, as code in memory has: the decoder must not depend on it.
      let padded = bytes + [UInt8](repeating: 0xCC, count: 16)
      let decoded = padded.withUnsafeBufferPointer { swalloc_access_size($0.baseAddress!) }
      #expect(decoded == size, "\(what): \(decoded), expected \(size)")
    }
  }
}
