import type Database from 'better-sqlite3'
import type { KeaEvent } from '../../parse/event.js'
import type { ChainHead, ChainProof, ChainReport, ChainVerifyOptions } from '../types.js'
import { DecodedBlock } from './blocks/codec.js'
import { digestOf, digestOfLeaves, GENESIS, leavesOf, linkOf, recordLeaf } from '../chain-format.js'

// The tamper-evidence chain (issue 22): one link per write batch, over the raw records that batch
// stored (docs/ARCHITECTURE.md has the format for third parties):
//   frame  = `<length of id>:<id><length of raw>:<raw>` (lengths in UTF-16 code units, as
//            JavaScript counts them), UTF-8
//   leaf   = SHA-256(frame)
//   digest = SHA-256(leaf 1 ‖ … ‖ leaf n), the batch's records in the order it stored them
//   link   = SHA-256(LINK_DOMAIN ‖ previous link (32 zero bytes for the first) ‖ seq ‖ n ‖ time
//            (ms), each 8-byte big-endian ‖ digest)
// A report names the newest link (the head) it was made against: altering a stored record
// afterwards changes its leaf and so its link's digest; re-computing the chain to hide that
// changes every later link, so the head a report names is no longer in it.
//
// Where each batch's records are (chain_runs: block, position, count, and `ord`, the place of the
// run's first record among the batch's) follows them as retention and `store delete` remove
// events from blocks, and as a re-import replaces a record's text: the leaf of each record removed
// is kept (chain_dropped), so a link that lost records still re-computes from its kept records
// and those leaves, and every kept record stays bound to its link. Per record the runs keep the
// first 4 bytes of its leaf (`tags`): which record of a broken link differs. A leaf per record
// costs ~1 µs more per event than hashing a batch as one stream; it is what keeps a link that
// lost one record to retention from leaving its other 4,999 unprotected.

const TAG_BYTES = 4

/** One batch's records placed in one block: positions pos … pos + events.length - 1. */
export interface ChainRun { block: number, pos: number, events: readonly KeaEvent[] }

/** What a block can say of its records: their ids and raw text by position. */
type RecordAt = (i: number) => { id: string, raw: string }

interface RunRow { block: number, pos: number, seq: number, ord: number, n: number, tags: Buffer }
interface LinkRow { seq: number, time: number, n: number, dropped: number, digest: Buffer, prev: Buffer, link: Buffer }

export class ChainWriter {
  private readonly s: ReturnType<typeof statements>

  constructor (db: Database.Database) {
    this.s = statements(db)
  }

  /** The link of batch `seq` (inside the store's write transaction): its runs, digest and link. */
  append (seq: number, runs: readonly ChainRun[], time = Date.now()): void {
    const parts: Buffer[] = []
    let n = 0
    for (const r of runs) {
      const events = r.events
      const leaves = leavesOf(events.length, (i) => (events[i] as KeaEvent).event.id, (i) => (events[i] as KeaEvent).event.original)
      const tags = Buffer.allocUnsafe(TAG_BYTES * events.length)
      for (let i = 0; i < events.length; i++) leaves.copy(tags, TAG_BYTES * i, 32 * i, 32 * i + TAG_BYTES)
      this.s.addRun.run(r.block, r.pos, seq, n, events.length, tags)
      parts.push(leaves)
      n += events.length
    }
    const digest = digestOfLeaves(parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts))
    // After retention pruned every link, the next follows the tombstone of the last one (read
    // only then: not a statement more per batch).
    const prev = (this.s.head.get() as { link: Buffer } | undefined)?.link ?? this.tombstone() ?? GENESIS
    this.s.addLink.run(seq, time, n, digest, prev, linkOf(prev, seq, n, time, digest))
  }

  private tombstone (): Buffer | undefined {
    const t = this.s.tombstone.get() as string | undefined
    return t === undefined ? undefined : Buffer.from(t.slice(1), 'hex')
  }

  /**
   * Events of block `block` (`total` before) removed where `drop(i)` (`at(i)`: the record there,
   * before the removal): their leaves are kept, the runs move to the kept positions, split where
   * a record went, and their links count what they lost.
   */
  removed (block: number, total: number, drop: (i: number) => boolean, at: RecordAt): void {
    const runs = this.s.runsOf.all(block) as RunRow[]
    // Records in no run (stored before the chain) leave the count verify allows for them.
    let uncovered = 0
    let next = 0
    for (const r of runs) { for (let i = next; i < r.pos; i++) if (drop(i)) uncovered++; next = r.pos + r.n }
    for (let i = next; i < total; i++) if (drop(i)) uncovered++
    if (uncovered > 0) this.s.lowerBase.run(uncovered)
    if (runs.length === 0) return
    // keptBefore[i]: kept positions before position i (the new position of a kept event i).
    const keptBefore = new Int32Array(total + 1)
    for (let i = 0; i < total; i++) keptBefore[i + 1] = (keptBefore[i] as number) + (drop(i) ? 0 : 1)
    this.s.delRuns.run(block)
    for (const r of runs) {
      let lost = 0
      let start = -1
      const flush = (end: number): void => {
        if (start < 0) return
        this.s.addRun.run(block, keptBefore[start], r.seq, r.ord + (start - r.pos), end - start, r.tags.subarray(TAG_BYTES * (start - r.pos), TAG_BYTES * (end - r.pos)))
        start = -1
      }
      for (let i = r.pos; i < r.pos + r.n; i++) {
        if (!drop(i)) { if (start < 0) start = i; continue }
        flush(i)
        const rec = at(i)
        this.s.addDropped.run(r.seq, r.ord + (i - r.pos), recordLeaf(rec.id, rec.raw))
        lost++
      }
      flush(r.pos + r.n)
      if (lost > 0) this.s.addDroppedCount.run(lost, r.seq)
    }
  }

  /**
   * Record `i` of block `block` replaced in place by a re-import that parsed better (`old`: the
   * record before): when its raw text changed, the old record leaves its link as a removal does
   * (its leaf kept), and the new one is placed in the current batch's link by the caller.
   */
  replaced (block: number, i: number, old: { id: string, raw: string }): void {
    const r = this.s.runAt.get(block, i) as RunRow | undefined
    // A record stored before the chain: the new one is covered from now on.
    if (r === undefined || i >= r.pos + r.n) { this.s.lowerBase.run(1); return }
    this.s.delRun.run(block, r.pos)
    if (i > r.pos) this.s.addRun.run(block, r.pos, r.seq, r.ord, i - r.pos, r.tags.subarray(0, TAG_BYTES * (i - r.pos)))
    if (i + 1 < r.pos + r.n) this.s.addRun.run(block, i + 1, r.seq, r.ord + (i + 1 - r.pos), r.pos + r.n - i - 1, r.tags.subarray(TAG_BYTES * (i + 1 - r.pos)))
    this.s.addDropped.run(r.seq, r.ord + (i - r.pos), recordLeaf(old.id, old.raw))
    this.s.addDroppedCount.run(1, r.seq)
  }

  /** A block dropped whole because it cannot be decoded: its records' leaves are unknown (NULL); their links can no longer be re-computed. */
  droppedBlock (block: number, total: number): void {
    let covered = 0
    for (const r of this.s.runsOf.all(block) as RunRow[]) {
      for (let i = 0; i < r.n; i++) this.s.addDropped.run(r.seq, r.ord + i, null)
      this.s.addDroppedCount.run(r.n, r.seq)
      covered += r.n
    }
    if (total > covered) this.s.lowerBase.run(total - covered)
    this.s.delRuns.run(block)
  }

  /**
   * Deletes the links all of whose records are gone and that precede every link with records
   * left; the last one deleted is kept as the tombstone the first kept link must follow.
   */
  prune (): number {
    const through = this.s.prunable.get() as { seq: number, link: Buffer } | undefined
    if (through === undefined) return 0
    this.s.setTombstone.run(`x${through.link.toString('hex')}`)
    this.s.pruneDropped.run(through.seq)
    return this.s.prune.run(through.seq).changes
  }
}

function statements (db: Database.Database) {
  return {
    addRun: db.prepare('INSERT INTO chain_runs (block, pos, seq, ord, n, tags) VALUES (?, ?, ?, ?, ?, ?)'),
    addLink: db.prepare('INSERT INTO chain (seq, time, n, digest, prev, link) VALUES (?, ?, ?, ?, ?, ?)'),
    head: db.prepare('SELECT link FROM chain ORDER BY seq DESC LIMIT 1'),
    runsOf: db.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE block = ? ORDER BY pos'),
    runAt: db.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE block = ? AND pos <= ? ORDER BY pos DESC LIMIT 1'),
    delRuns: db.prepare('DELETE FROM chain_runs WHERE block = ?'),
    delRun: db.prepare('DELETE FROM chain_runs WHERE block = ? AND pos = ?'),
    addDropped: db.prepare('INSERT INTO chain_dropped (seq, ord, leaf) VALUES (?, ?, ?)'),
    addDroppedCount: db.prepare('UPDATE chain SET dropped = dropped + ? WHERE seq = ?'),
    // The newest link such that it and every link before it have no records left.
    prunable: db.prepare(`SELECT seq, link FROM chain WHERE dropped >= n
      AND seq < coalesce((SELECT min(seq) FROM chain WHERE dropped < n), 9223372036854775807) ORDER BY seq DESC LIMIT 1`),
    tombstone: db.prepare('SELECT value FROM meta WHERE key = \'chain_pruned\'').pluck(),
    lowerBase: db.prepare('UPDATE meta SET value = max(0, value - ?) WHERE key = \'chain_base\''),
    setTombstone: db.prepare('INSERT INTO meta (key, value) VALUES (\'chain_pruned\', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    pruneDropped: db.prepare('DELETE FROM chain_dropped WHERE seq <= ?'),
    prune: db.prepare('DELETE FROM chain WHERE seq <= ?')
  }
}

const headOf = (l: LinkRow): ChainHead => ({ seq: l.seq, time: new Date(l.time).toISOString(), link: l.link.toString('hex') })

/** Decoded blocks verify keeps (least recently used out): a live tail's batch grows one block per source. 256 peaked at 408 MiB RSS on the bench's 1M-event file, 64 at 253 MiB (2.7 s either way). */
const VERIFY_BLOCKS = 64

/**
 * Re-computes the chain of a store file: every link from its stored predecessor (the first from
 * the tombstone pruning left, or zeros), every link's digest from its records' leaves — kept
 * records hashed again, removed ones by the leaves kept for them. Stops at the first link that
 * does not hold.
 */
export function verifyChain (db: Database.Database, opts: ChainVerifyOptions = {}): ChainReport {
  const { progress, named } = opts
  const wanted = named === undefined ? undefined : Buffer.from(named, 'hex')
  const links = db.prepare('SELECT seq, time, n, dropped, digest, prev, link FROM chain ORDER BY seq').iterate() as IterableIterator<LinkRow>
  const total = db.prepare('SELECT count(*) FROM chain').pluck().get() as number
  const runsOf = db.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE seq = ? ORDER BY ord')
  const droppedOf = db.prepare('SELECT ord, leaf FROM chain_dropped WHERE seq = ? ORDER BY ord')
  const blockRow = db.prepare('SELECT source_id, n, codec, payload FROM blocks WHERE id = ?')
  const covered = db.prepare('SELECT coalesce(sum(n), 0) FROM chain_runs').pluck().get() as number
  const events = db.prepare('SELECT coalesce(sum(n), 0) FROM blocks').pluck().get() as number
  const meta = (key: string): string | undefined => db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined
  const base = Number(meta('chain_base') ?? 0)
  // Kept as 'x' + hex: meta's values have INTEGER affinity, and an all-digit hex would turn into a number.
  const tombstone = meta('chain_pruned')?.slice(1)
  const report: ChainReport = { links: 0, records: 0, intact: 0, partial: 0, uncovered: events - covered, ...(named === undefined ? {} : { named: { link: named } }) }
  const cache = new Map<number, DecodedBlock | Error>()
  const block = (id: number): DecodedBlock | Error => {
    let b = cache.get(id)
    if (b !== undefined) {
      // Least recently used out: refreshed on every use.
      cache.delete(id)
      cache.set(id, b)
      return b
    }
    const row = blockRow.get(id) as { source_id: string, n: number, codec: number, payload: Buffer } | undefined
    try {
      if (row === undefined) throw new Error(`block ${id} is missing`)
      b = DecodedBlock.unpack(row.payload, row.codec, row.source_id)
    } catch (err) {
      b = err instanceof Error ? err : new Error(String(err))
    }
    if (cache.size >= VERIFY_BLOCKS) cache.delete(cache.keys().next().value as number)
    cache.set(id, b)
    return b
  }
  let prev: Buffer | undefined = tombstone === undefined ? GENESIS : Buffer.from(tombstone, 'hex')
  for (const l of links) {
    const fail = (reason: string, record?: { id: string, block: number, position: number }): ChainReport => {
      report.broken = { seq: l.seq, time: new Date(l.time).toISOString(), reason, ...(record === undefined ? {} : { record }) }
      return report
    }
    report.links++
    if (report.oldest === undefined) report.oldest = headOf(l)
    if (!prev.equals(l.prev)) return fail(report.links === 1 ? 'it does not follow the last link retention removed (older links were removed or altered)' : 'its stored predecessor is not the link before it (a link was altered, removed or inserted)')
    if (!linkOf(l.prev, l.seq, l.n, l.time, l.digest).equals(l.link)) return fail('its link is not the hash of its predecessor, numbers and digest')
    prev = l.link
    if (wanted !== undefined && report.named !== undefined && l.link.equals(wanted)) report.named.seq = l.seq
    // Its records in order: runs of kept records and the leaves of removed ones, by ord.
    const leaves = new Array<Buffer | null | undefined>(l.n)
    let kept = 0
    for (const r of runsOf.all(l.seq) as RunRow[]) {
      const b = block(r.block)
      if (b instanceof Error) return fail(`block ${r.block} cannot be read (${b.message})`)
      if (r.pos + r.n > b.n || r.ord + r.n > l.n) return fail(`its records at positions ${r.pos} … ${r.pos + r.n - 1} of block ${r.block} are not all there`)
      for (let i = 0; i < r.n; i++) {
        let id: string
        let raw: string
        try {
          // Frames decompress on first use: a damaged one fails here, not when the block opened.
          id = b.id(r.pos + i)
          raw = b.original(r.pos + i)
        } catch (err) {
          return fail(`block ${r.block} cannot be read at position ${r.pos + i} (${(err as Error).message})`)
        }
        const leaf = recordLeaf(id, raw)
        if (leaf.compare(r.tags, TAG_BYTES * i, TAG_BYTES * (i + 1), 0, TAG_BYTES) !== 0) return fail('a record differs from what was stored', { id, block: r.block, position: r.pos + i })
        if (leaves[r.ord + i] !== undefined) return fail(`two of its runs claim record ${r.ord + i + 1}`)
        leaves[r.ord + i] = leaf
      }
      kept += r.n
    }
    let lost = 0
    let unknown = 0
    for (const d of droppedOf.all(l.seq) as Array<{ ord: number, leaf: Buffer | null }>) {
      if (d.ord >= l.n || leaves[d.ord] !== undefined) return fail(`record ${d.ord + 1} is both kept and removed`)
      leaves[d.ord] = d.leaf
      lost++
      if (d.leaf === null) unknown++
    }
    report.records += kept
    if (kept + lost !== l.n || lost !== l.dropped) return fail(`${kept} of its ${l.n} records are in the store and ${lost} recorded as removed (${l.dropped} counted)`)
    // A leaf unknown (a block that could not be decoded was dropped): the digest cannot be
    // re-computed, so the link's kept records cannot be proven as stored — a failure, not a pass.
    if (unknown > 0 && kept > 0) return fail(`${unknown} of its records were lost with a block that could not be read: its ${kept} kept records cannot be proven as stored`)
    if (unknown === 0 && !digestOf(leaves as Buffer[]).equals(l.digest)) return fail('its records do not hash to its digest (a record was altered, added or removed behind keatrail\'s back)')
    if (lost > 0) report.partial++
    else report.intact++
    report.head = headOf(l)
    progress?.(report.links, total)
  }
  // Records whose link is gone (the newest links deleted, or any): nothing before them shows it.
  const orphan = db.prepare('SELECT seq FROM chain_runs WHERE seq NOT IN (SELECT seq FROM chain) ORDER BY seq LIMIT 1').pluck().get() as number | undefined
  if (orphan !== undefined) report.broken = { seq: orphan, time: '', reason: 'the link of these records is missing (removed from the chain)' }
  // Records in no link beyond those stored before the chain began: added behind keatrail's back.
  else if (report.uncovered > base) report.broken = { seq: report.head?.seq ?? 0, time: report.head?.time ?? '', reason: `${report.uncovered - base} records are in no link (${base} were stored before the store kept a chain): added behind keatrail's back, or their links removed` }
  return report
}

/** The newest link (what a report is made against), or undefined before the first batch. */
export function chainHead (db: Database.Database): ChainHead | undefined {
  const l = db.prepare('SELECT seq, time, n, dropped, digest, prev, link FROM chain ORDER BY seq DESC LIMIT 1').get() as LinkRow | undefined
  return l === undefined ? undefined : headOf(l)
}

/** The link that covers each stored record (`locate`: where an id is stored), or undefined (stored before the chain, or not stored). */
export function chainProofs (db: Database.Database, locate: (id: string) => { row: { id: number }, i: number } | undefined, ids: readonly string[]): Array<ChainProof | undefined> {
  const runAt = db.prepare('SELECT seq, pos, n FROM chain_runs WHERE block = ? AND pos <= ? ORDER BY pos DESC LIMIT 1')
  const linkAt = db.prepare('SELECT link FROM chain WHERE seq = ?').pluck()
  return ids.map((id) => {
    const at = locate(id)
    if (at === undefined) return undefined
    const run = runAt.get(at.row.id, at.i) as { seq: number, pos: number, n: number } | undefined
    if (run === undefined || at.i >= run.pos + run.n) return undefined
    const link = linkAt.get(run.seq) as Buffer | undefined
    return link === undefined ? undefined : { seq: run.seq, link: link.toString('hex') }
  })
}
