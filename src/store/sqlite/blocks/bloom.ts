/**
 * A block's token bloom filter: which full-text tokens (FTS5 unicode61 rules, src/query/evaluate.ts)
 * its messages hold. Fixed size, so that events merged into a block later are OR-ed in without
 * rebuilding it: 16 bits per event of a full block (issue 19), 3 hashes. A full block of real INFO
 * logs holds ~3 distinct tokens per event (transaction ids, addresses, MACs are the distinct ones),
 * so ~20 % of the bits are set and a token that is absent passes ~1 % of the time.
 */
export const BLOOM_BYTES = 8192
/** Blooms of blocks smaller than this are stored compressed (a sparse 8 KiB bitmap is mostly zeros). */
export const BLOOM_RAW_FROM = 1024
const BITS = BLOOM_BYTES * 8
/** BITS is a power of two: a bit index is the hash's low bits (the same as % BITS of the unsigned hash). */
const BIT_MASK = BITS - 1
const HASHES = 3

import { textTokens } from '../../../query/evaluate.js'

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** FNV-1a over UTF-16 code units, then a second hash derived by mixing (Kirsch–Mitzenmacher double hashing). */
function hashes (token: string): [number, number] {
  let h = FNV_OFFSET
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return mixed(h)
}

function mixed (h: number): [number, number] {
  let h2 = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35)
  h2 ^= h2 >>> 16
  return [h >>> 0, (h2 | 1) >>> 0]
}

export function bloomAdd (bits: Uint8Array, token: string): void {
  setBits(bits, hashes(token))
}

function setBits (bits: Uint8Array, [a, b]: [number, number]): void {
  for (let i = 0; i < HASHES; i++) {
    const at = (a + Math.imul(i, b)) & BIT_MASK
    bits[at >>> 3] = (bits[at >>> 3] as number) | (1 << (at & 7))
  }
}

/** setBits(bits, mixed(h)) without the pair: a write hashes ~15 tokens per event (bench/e2e: 5 % of its CPU). */
function setHashBits (bits: Uint8Array, h: number): void {
  let h2 = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35)
  h2 ^= h2 >>> 16
  const b = h2 | 1
  for (let i = 0; i < HASHES; i++) {
    const at = (h + Math.imul(i, b)) & BIT_MASK
    bits[at >>> 3] = (bits[at >>> 3] as number) | (1 << (at & 7))
  }
}

export function bloomHas (bits: Uint8Array, token: string): boolean {
  const [a, b] = hashes(token)
  for (let i = 0; i < HASHES; i++) {
    const at = (a + Math.imul(i, b)) & BIT_MASK
    if (((bits[at >>> 3] as number) & (1 << (at & 7))) === 0) return false
  }
  return true
}

/** ASCII characters that are token characters (unicode61 with tokenchars '_'): letters, digits, '_'. */
const ASCII_TOKEN = new Uint8Array(128)
for (let c = 0; c < 128; c++) ASCII_TOKEN[c] = /[A-Za-z0-9_]/.test(String.fromCharCode(c)) ? 1 : 0

/**
 * Adds the full-text tokens of `text` (textTokens' rule) to a bloom. ASCII text, almost every
 * Kea message, is hashed in place, folded as it is read: building each token's string first
 * (textTokens) cost ~1 µs per message and most of the garbage of a write. Anything else, or a
 * token past FTS5's 32,768-byte cut, takes textTokens.
 */
export function bloomAddText (bits: Uint8Array, text: string): void {
  if (text.length <= 32768) {
    let h = FNV_OFFSET
    let inToken = false
    let i = 0
    for (; i < text.length; i++) {
      let c = text.charCodeAt(i)
      if (c >= 128) break
      if (ASCII_TOKEN[c] === 1) {
        if (c >= 65 && c <= 90) c += 32
        h = Math.imul(h ^ c, FNV_PRIME)
        inToken = true
      } else if (inToken) {
        setHashBits(bits, h)
        h = FNV_OFFSET
        inToken = false
      }
    }
    if (i === text.length) {
      if (inToken) setHashBits(bits, h)
      return
    }
  }
  // Not ASCII: the tokens hashed so far are hashed again, which sets the same bits.
  for (const t of textTokens(text)) bloomAdd(bits, t)
}

export function newBloom (): Uint8Array {
  return new Uint8Array(BLOOM_BYTES)
}
