// AccessSize.c: how many bytes of memory an x86-64 instruction reads or writes, for guarded sampling's fault
// reports ("write of 8 bytes at ..."). The faulting instruction is decoded just far enough to know its
// memory operand's size: prefixes (legacy, REX, VEX, EVEX), the opcode, and for the few opcode groups whose
// operation depends on it, the ModRM byte's reg field. It covers the moves, arithmetic and string
// instructions compilers emit for loads and stores, and the SSE, AVX and AVX-512 moves that memcpy, memset
// and vectorized loops use. Anything else answers 0 (the report then gives no size). Runs in the SIGSEGV
// handler: no allocation, no locks, and no byte is read past the instruction (the processor fetched all of
// it before the data access faulted).
#include "CShim.h"

/// The operand size of an instruction whose odd opcode selects the full operand size: 2 with the 0x66
/// prefix, 8 with REX.W, else 4.
static int operand_size(int rex_w, int opsize16) { return rex_w ? 8 : opsize16 ? 2 : 4; }

/// SSE, AVX and AVX-512 instructions of the 0F, 0F38 and 0F3A maps: `map` 1 (0F), 2 (0F38) or 3 (0F3A);
/// `vector` the vector length in bytes (16 for the legacy SSE encoding; 16, 32 or 64 by VEX.L or EVEX.L'L);
/// `pp` the mandatory or implied prefix (0 none, 1 66, 2 F3, 3 F2); `mmx`: the legacy encoding, where an
/// integer operation without 66 or F3 works on an 8-byte MMX register.
static int vector_size(int map, uint8_t opcode, int vector, int pp, int w, int mmx) {
  int packed = mmx ? (pp == 1 ? 16 : 8) : vector;  // packed integer operations: xmm (66) or mm; ymm, zmm
  if (map == 1) {
    switch (opcode) {
    case 0x10: case 0x11:  // movups/movupd; movss (F3), movsd (F2) from or to memory
      return pp == 2 ? 4 : pp == 3 ? 8 : vector;
    case 0x12: case 0x13: case 0x16: case 0x17:  // movlps/movlpd/movhps/movhpd; movsldup/movshdup (F3)
      return pp == 2 ? vector : 8;
    case 0x28: case 0x29: case 0x2B:  // movaps/movapd, movntps/movntpd
      return vector;
    case 0x6F: case 0x7F: case 0xE7:  // movq (mm), movdqa (66), movdqu (F3); movntq, movntdq (66)
      return mmx && pp == 2 ? 16 : packed;
    case 0x2E: case 0x2F:  // ucomiss/comiss, ucomisd/comisd (66)
      return pp == 1 ? 8 : 4;
    case 0x6E: case 0xC3:  // movd/movq to a register; movnti
      return w ? 8 : 4;
    case 0x7E:  // movq xmm, m64 (F3); movd/movq from a register
      return pp == 2 ? 8 : w ? 8 : 4;
    case 0xD6:  // movq m64, xmm
      return 8;
    default:
      break;
    }
    if (opcode >= 0x51 && opcode <= 0x5F) return pp == 2 ? 4 : pp == 3 ? 8 : vector;  // sqrt, add, mul, ...
    if ((opcode >= 0x60 && opcode <= 0x6D) || (opcode >= 0x74 && opcode <= 0x76) ||
        (opcode >= 0xD1 && opcode <= 0xFE)) {
      return packed;
    }
    return 0;
  }
  if (map == 2) {
    switch (opcode) {
    case 0x18: return 4;                  // vbroadcastss
    case 0x19: return 8;                  // vbroadcastsd
    case 0x58: return 4;                  // vpbroadcastd
    case 0x59: return 8;                  // vpbroadcastq
    case 0x78: return 1;                  // vpbroadcastb
    case 0x79: return 2;                  // vpbroadcastw
    case 0x2A: return vector;             // vmovntdqa
    case 0x00: case 0x04: case 0x0B: case 0x17: case 0x1C: case 0x1D: case 0x1E:
    case 0x29: case 0x2B: case 0x37: case 0x38: case 0x39: case 0x3A: case 0x3B: case 0x3C: case 0x3D:
    case 0x3E: case 0x3F: case 0x40:
      return vector;                      // packed integer operations (shuffle, sign, compare, min, max, ...)
    default:
      return 0;
    }
  }
  return 0;
}

int swalloc_access_size(const uint8_t *code) {
  if (code == NULL) return 0;
  int prefix66 = 0, prefixF2 = 0, prefixF3 = 0;
  int length = 0;
  // Legacy prefixes (at most 14 bytes of them: the instruction is at most 15).
  for (; length < 14; length++) {
    uint8_t byte = code[length];
    if (byte == 0x66) {
      prefix66 = 1;
    } else if (byte == 0xF2) {
      prefixF2 = 1, prefixF3 = 0;
    } else if (byte == 0xF3) {
      prefixF3 = 1, prefixF2 = 0;
    } else if (byte == 0xF0 || byte == 0x67 || byte == 0x2E || byte == 0x36 || byte == 0x3E || byte == 0x26 ||
               byte == 0x64 || byte == 0x65) {
      continue;
    } else {
      break;
    }
  }
  if (length >= 14) return 0;
  uint8_t byte = code[length];
  // VEX (C5: two bytes, map 0F; C4: three bytes) and EVEX (62, four bytes). In 64-bit mode these bytes are
  // always prefixes (LDS, LES and BOUND do not exist there).
  if (byte == 0xC5) {
    uint8_t p = code[length + 1];
    return vector_size(1, code[length + 2], (p & 4) ? 32 : 16, p & 3, 0, 0);
  }
  if (byte == 0xC4) {
    uint8_t p0 = code[length + 1], p1 = code[length + 2];
    return vector_size(p0 & 0x1F, code[length + 3], (p1 & 4) ? 32 : 16, p1 & 3, (p1 >> 7) & 1, 0);
  }
  if (byte == 0x62) {
    uint8_t p0 = code[length + 1], p1 = code[length + 2], p2 = code[length + 3];
    int vectorLength = (p2 >> 5) & 3;
    return vector_size(p0 & 7, code[length + 4], 16 << (vectorLength > 2 ? 2 : vectorLength), p1 & 3,
                       (p1 >> 7) & 1, 0);
  }
  int rex_w = 0;
  if ((byte & 0xF0) == 0x40) {
    rex_w = (byte >> 3) & 1;
    length++;
    byte = code[length];
  }
  int full = operand_size(rex_w, prefix66);
  if (byte == 0x0F) {
    uint8_t opcode = code[length + 1];
    switch (opcode) {
    case 0xB6: case 0xBE: return 1;  // movzx, movsx from a byte
    case 0xB7: case 0xBF: return 2;  // from a word
    case 0xB0: return 1;             // cmpxchg
    case 0xB1: return full;
    case 0xC0: return 1;             // xadd
    case 0xC1: return full;
    case 0xC7: return rex_w ? 16 : 8;  // cmpxchg8b, cmpxchg16b (the group's memory forms)
    case 0xAF: return full;          // imul
    case 0xA3: case 0xAB: case 0xB3: case 0xBB: case 0xBC: case 0xBD: return full;  // bt*, bsf, bsr
    case 0x38: case 0x3A: return 0;
    default: break;
    }
    if (opcode >= 0x40 && opcode <= 0x4F) return full;  // cmovcc
    if (opcode >= 0x90 && opcode <= 0x9F) return 1;     // setcc
    // The legacy SSE encoding: its last F2 or F3 prefix, else 66, is the mandatory prefix.
    int pp = prefixF3 ? 2 : prefixF2 ? 3 : prefix66 ? 1 : 0;
    return vector_size(1, opcode, 16, pp, rex_w, 1);
  }
  // Arithmetic with a ModRM operand (add, or, adc, sbb, and, sub, xor, cmp): even opcodes on bytes.
  if (byte < 0x40 && (byte & 7) < 4) return (byte & 1) ? full : 1;
  switch (byte) {
  case 0x63: return 4;                              // movsxd
  case 0x69: case 0x6B: return full;                // imul with an immediate
  case 0x80: case 0x82: case 0x84: case 0x86: case 0x88: case 0x8A: case 0xC0: case 0xC6: case 0xD0:
  case 0xD2: case 0xF6: case 0xFE:
    return 1;
  case 0x81: case 0x83: case 0x85: case 0x87: case 0x89: case 0x8B: case 0xC1: case 0xC7: case 0xD1:
  case 0xD3: case 0xF7:
    return full;
  case 0x8F: return 8;                              // pop to memory
  case 0xA4: case 0xA6: case 0xAA: case 0xAC: case 0xAE: return 1;  // movs, cmps, stos, lods, scas: bytes
  case 0xA5: case 0xA7: case 0xAB: case 0xAD: case 0xAF: return full;
  case 0xFF: {
    int reg = (code[length + 1] >> 3) & 7;
    // inc, dec: the operand size; call, jmp (near) and push: 8 bytes in 64-bit mode; far forms: 10.
    if (reg <= 1) return full;
    if (reg == 2 || reg == 4 || reg == 6) return 8;
    return 0;
  }
  default:
    return 0;
  }
}
