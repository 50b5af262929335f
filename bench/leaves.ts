import { digestOf, digestOfLeaves, leavesOf, recordLeaf } from '../src/store/chain-format.js'
import { templateRecords } from './lines.js'

// bench/leaves: the tamper-evidence chain's leaves of a write batch (src/store/chain-format.ts),
// a Buffer per record from `recordLeaf` then `digestOf` (before) against `leavesOf` +
// `digestOfLeaves` (one buffer of leaves), on the captured Kea 2.2 INFO records with ids shaped
// as the file source makes them. Runs alternate; ns per record is printed.
// Usage: npm run bench:leaves [-- RECORDS ROUNDS]   (defaults 200,000 3)

const RECORDS = Number(process.argv[2] ?? 200_000)
const ROUNDS = Number(process.argv[3] ?? 3)
const BATCH = 5_000

const templates = templateRecords('info').map((r) => r.join('\n'))
// Flat strings of their own, as the parser makes them (slices of a chunk flattened).
const raws = Array.from({ length: RECORDS }, (_, i) => ` ${templates[i % templates.length] ?? ''}`.slice(1))
const ids = Array.from({ length: RECORDS }, (_, i) => `3f2a9c1d0e4b:${(i * 211).toString(36)}`)

const candidates: Record<string, (from: number, n: number) => Buffer> = {
  'Buffer per record': (from, n) => digestOf(Array.from({ length: n }, (_, i) => recordLeaf(ids[from + i] as string, raws[from + i] as string))),
  'one buffer of leaves': (from, n) => digestOfLeaves(leavesOf(n, (i) => ids[from + i] as string, (i) => raws[from + i] as string))
}

const gc = (globalThis as { gc?: () => void }).gc
const digests = new Map<string, string>()
for (let round = 1; round <= ROUNDS; round++) {
  for (const [name, run] of Object.entries(candidates)) {
    gc?.()
    const t0 = process.hrtime.bigint()
    let all = ''
    for (let from = 0; from < RECORDS; from += BATCH) all += run(from, Math.min(BATCH, RECORDS - from)).toString('hex')
    const ns = Number(process.hrtime.bigint() - t0) / RECORDS
    digests.set(name, all)
    console.log(`round ${round}  ${name.padEnd(22)} ${ns.toFixed(0).padStart(6)} ns/record`)
  }
}
if (new Set(digests.values()).size !== 1) throw new Error('the candidates made different digests')
