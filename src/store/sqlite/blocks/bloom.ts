/**
 * A block's token bloom filter: which full-text tokens (FTS5 unicode61 rules, src/query/evaluate.ts)
 * its messages hold. Fixed size, so that events merged into a block later are OR-ed in without
 * rebuilding it: 16 bits per event of a full block (issue 19), 3 hashes. A full block of real INFO
 * logs holds ~3 distinct tokens per event (transaction ids, addresses, MACs are the distinct ones),
 * so ~20 % of the bits are set and a token that is absent passes ~1 % of the time.
 */
export const BLOOM_BYTES = 8192
const BITS = BLOOM_BYTES * 8
const HASHES = 3

/** FNV-1a over UTF-16 code units, then a second hash derived by mixing (Kirsch–Mitzenmacher double hashing). */
function hashes (token: string): [number, number] {
  let h = 0x811c9dc5
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  let h2 = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35)
  h2 ^= h2 >>> 16
  return [h >>> 0, (h2 | 1) >>> 0]
}

export function bloomAdd (bits: Uint8Array, token: string): void {
  const [a, b] = hashes(token)
  for (let i = 0; i < HASHES; i++) {
    const bit = (a + Math.imul(i, b)) >>> 0
    const at = bit % BITS
    bits[at >>> 3] = (bits[at >>> 3] as number) | (1 << (at & 7))
  }
}

export function bloomHas (bits: Uint8Array, token: string): boolean {
  const [a, b] = hashes(token)
  for (let i = 0; i < HASHES; i++) {
    const at = ((a + Math.imul(i, b)) >>> 0) % BITS
    if (((bits[at >>> 3] as number) & (1 << (at & 7))) === 0) return false
  }
  return true
}

export function newBloom (): Uint8Array {
  return new Uint8Array(BLOOM_BYTES)
}
