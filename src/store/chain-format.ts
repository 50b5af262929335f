import { createHash, hash } from 'node:crypto'

// The tamper-evidence chain's format, one for every store (src/store/sqlite/chain.ts,
// src/store/elasticsearch/chain.ts; docs/ARCHITECTURE.md for third parties):
//   frame  = `<length of id>:<id><length of raw>:<raw>` (UTF-16 code units), UTF-8
//   leaf   = SHA-256(frame); digest = SHA-256(leaf 1 ‖ … ‖ leaf n)
//   link   = SHA-256(LINK_DOMAIN ‖ previous link ‖ seq ‖ n ‖ time, 8-byte big-endian ‖ digest)

const LINK_DOMAIN = Buffer.from('keatrail-chain-v1\n')
export const GENESIS = Buffer.alloc(32)

export function linkOf (prev: Uint8Array, seq: number, n: number, time: number, digest: Uint8Array): Buffer {
  const ints = Buffer.alloc(24)
  ints.writeBigUInt64BE(BigInt(seq), 0)
  ints.writeBigUInt64BE(BigInt(n), 8)
  ints.writeBigUInt64BE(BigInt(time), 16)
  return createHash('sha256').update(LINK_DOMAIN).update(prev).update(ints).update(digest).digest()
}

/** A record as its leaf frames it. */
export function recordFrame (id: string, raw: string): string {
  return `${id.length}:${id}${raw.length}:${raw}`
}

/** A record's leaf: SHA-256 of its frame. */
export function recordLeaf (id: string, raw: string): Buffer {
  return hash('sha256', recordFrame(id, raw), 'buffer')
}

/**
 * The leaves of `n` records (`idAt(i)`, `rawAt(i)`), in order, as one buffer of 32-byte leaves.
 * Each leaf comes out of `hash` as a 32-character 'binary' (latin1) string copied into the buffer: a Buffer
 * per record cost ~0.6 µs more (bench/leaves.ts: 1,340–1,400 against 740–805 ns per record).
 */
export function leavesOf (n: number, idAt: (i: number) => string, rawAt: (i: number) => string): Buffer {
  const leaves = Buffer.allocUnsafe(32 * n)
  for (let i = 0; i < n; i++) leaves.write(hash('sha256', recordFrame(idAt(i), rawAt(i)), 'binary'), 32 * i, 'binary')
  return leaves
}

/** The digest of a batch from its leaves as one buffer (as `leavesOf` makes them). */
export function digestOfLeaves (leaves: Uint8Array): Buffer {
  return hash('sha256', leaves, 'buffer')
}

/** The digest of a batch: SHA-256 over its records' leaves in order. */
export function digestOf (leaves: readonly Uint8Array[]): Buffer {
  const h = createHash('sha256')
  for (const l of leaves) h.update(l)
  return h.digest()
}
