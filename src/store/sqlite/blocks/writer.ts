import type Database from 'better-sqlite3'
import { derivationOf } from '../../../parse/derivation.js'
import type { KeaEvent } from '../../../parse/event.js'
import { isoToMicros } from '../../time.js'
import { parsesBetter } from '../../types.js'
import { BLOOM_BYTES, BLOOM_RAW_FROM, bloomAddText, newBloom } from './bloom.js'
import { decodeTimes, encodeTimes, filterLines, frameOf, linesOf, packLines, replaceLine, unpackLines, type BlockLines, type DecodedBlock } from './codec.js'
import { compress, decompress, WRITE_CODEC, type CodecId } from './compress.js'
import { TermCollector } from './plan.js'
import type { BlockReader, BlockRow } from './reader.js'
import { ChainWriter, type ChainRun } from '../chain.js'

/**
 * Events per block. 4,096: one write batch of a busy source fills one (the pipeline's batches
 * are ≤ 5,000), decoding one for a query costs ~5 ms, and a block's summary, postings and bloom
 * cost a few bytes per event at that size (issue 19's prototype; bench/e2e, bench/api).
 */
export const BLOCK_EVENTS = 4096
/**
 * A batch is merged into its source's newest block only if that block ends less than this before
 * the batch begins: a live tail's trickle fills blocks, but a block never spans days (time pruning).
 */
const MERGE_WITHIN_US = 3600 * 1e6

interface FullBlock { times: Buffer, bloom: Buffer, payload: Buffer, n: number, codec: number, pv: number | null }
interface StoredBlock extends BlockRow { min_off: number | null, max_off: number | null }

/** `withdrawn`: the stored versions of events replaced (those with a lease action): their observations go. */
export interface BatchResult { written: number, duplicates: number, replaced: number, fresh: KeaEvent[], withdrawn: KeaEvent[] }

/** The offset an event's id names (`<source_id>-<hex offset>`, file and syslog sources), or undefined. */
export function offsetOf (e: KeaEvent, sourceId: string): number | undefined {
  const off = e.log.offset
  if (off === undefined) return undefined
  const id = e.event.id
  const hex = off.toString(16)
  return id.length === sourceId.length + 1 + hex.length && id.startsWith(sourceId) && id.endsWith(hex) && id.charCodeAt(sourceId.length) === 45 ? off : undefined
}

function bloomFor (n: number, bits: Uint8Array, codec: CodecId): Buffer {
  return n >= BLOOM_RAW_FROM ? Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength) : compress(Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength), codec)
}

function bloomOf (row: { bloom: Buffer, n: number, codec: number }): Uint8Array {
  return row.bloom.length === BLOOM_BYTES && row.n >= BLOOM_RAW_FROM ? new Uint8Array(row.bloom) : new Uint8Array(decompress(row.bloom, row.codec))
}

/**
 * The block layout's write side, on the store's connection, inside the store's transaction:
 * replays are recognised by (source, offset) — the blocks of the source whose offset range
 * overlaps the batch's — or by the id table for ids that name no offset; new events fill their
 * source's newest block up to BLOCK_EVENTS (compaction at write time: a live tail of a few events
 * a second would otherwise leave a block per batch), then new blocks.
 */
export class BlockWriter {
  private readonly s: ReturnType<typeof statements>
  private readonly terms = new TermCollector()
  private readonly chain: ChainWriter
  /** Where the current batch's new records went (its chain link's runs). */
  private placed: ChainRun[] = []
  /**
   * parse_contexts ids of the derivations met in the current batch: looked up per batch, not
   * kept across them (a rolled-back batch takes the rows it inserted with it).
   */
  private contexts = new Map<string, { id: number, v: number }>()
  private readonly contextOf = (e: KeaEvent): number => {
    const d = derivationOf(e)
    if (d === undefined) return -1
    let c = this.contexts.get(d.key)
    if (c === undefined) {
      this.s.addContext.run(d.key)
      c = { id: this.s.contextId.get(d.key) as number, v: d.spec.v }
      this.contexts.set(d.key, c)
    }
    return c.id
  }

  /** `codec`: what the blocks it writes or rewrites are compressed with (a block read keeps its own). */
  constructor (db: Database.Database, private readonly reader: BlockReader, private readonly codec: CodecId = WRITE_CODEC) {
    this.s = statements(db)
    this.chain = new ChainWriter(db)
  }

  /** Stores a batch (inside the caller's transaction); returns the write sequence it took. */
  write (events: readonly KeaEvent[]): BatchResult & { seq: number } {
    const seq = this.s.seq.get() as number
    this.contexts = new Map()
    this.placed = []
    const res: BatchResult = { written: 0, duplicates: 0, replaced: 0, fresh: [], withdrawn: [] }
    const bySource = new Map<string, KeaEvent[]>()
    for (const e of events) {
      const src = e.kea.source_id ?? ''
      const list = bySource.get(src)
      if (list === undefined) bySource.set(src, [e])
      else list.push(e)
    }
    for (const [src, list] of bySource) this.writeSource(src, list, seq, res)
    if (this.placed.length > 0) this.chain.append(seq, this.placed)
    this.reader.forget()
    return { ...res, seq }
  }

  private writeSource (src: string, events: KeaEvent[], seq: number, res: BatchResult): void {
    // Where each already-stored id is: the blocks of this source overlapping the batch's offsets.
    const stored = new Map<string, { row: StoredBlock, i: number }>()
    let lo = Infinity
    let hi = -Infinity
    const addressed = new Map<KeaEvent, number>()
    // Offsets ascending through the batch: no id repeats within it (a file source's batch).
    let ascending = true
    let prev = -1
    for (const e of events) {
      const off = offsetOf(e, src)
      if (off === undefined) { ascending = false; continue }
      addressed.set(e, off)
      if (off <= prev) ascending = false
      prev = off
      if (off < lo) lo = off
      if (off > hi) hi = off
    }
    const look = (row: StoredBlock): void => {
      // A block that cannot be decoded (corrupted on disk: every read reaching it fails with
      // KEATRAIL_ERR_STORE_READ) cannot tell which of the batch it holds: those are stored
      // again rather than the source stalled on a batch that can never be written.
      const b = this.readable(row)
      if (b === undefined) return
      for (let i = 0; i < b.n; i++) stored.set(b.id(i), { row, i })
    }
    if (addressed.size > 0) for (const row of this.s.overlapping.all(src, lo, hi) as StoredBlock[]) look(row)
    const seen = new Set<string>()
    // New data (nothing stored where the batch's offsets are, none repeated): all of it is
    // fresh, without a Set and a Map lookup per event (~4 % of a write, bench/e2e profile).
    const allFresh = ascending && stored.size === 0
    const fresh: KeaEvent[] = allFresh ? events : []
    const repairs = new Map<number, { row: StoredBlock, fixes: Array<{ i: number, e: KeaEvent }> }>()
    for (const e of allFresh ? [] : events) {
      const id = e.event.id
      if (seen.has(id)) { res.duplicates++; continue }
      seen.add(id)
      if (!addressed.has(e)) {
        const row = this.s.idBlock.get(id) as StoredBlock | undefined
        if (row !== undefined && !stored.has(id)) look(row)
      }
      const at = stored.get(id)
      if (at === undefined) { fresh.push(e); continue }
      // Event ids come from the source and offset, not the pattern: the same line imported
      // again with the right pattern after the wrong one replaces what parsed worse.
      // A stored event that cannot be read is kept as it is: a replay, not a repair.
      const old = this.storedEvent(at)
      if (old === undefined || !parsesBetter(e.kea.parse.status, old.kea.parse.status)) { res.duplicates++; continue }
      let r = repairs.get(at.row.id)
      if (r === undefined) { r = { row: at.row, fixes: [] }; repairs.set(at.row.id, r) }
      r.fixes.push({ i: at.i, e })
      if (old.event.action !== undefined) res.withdrawn.push(old)
      res.replaced++
      res.fresh.push(e)
    }
    for (const r of repairs.values()) this.repair(r.row, r.fixes, seq)
    if (fresh.length === 0) return
    res.written += fresh.length
    res.fresh.push(...fresh)
    let rest = fresh
    const ts = fresh.map((e) => isoToMicros(e['@timestamp']))
    // A batch that fits in its source's newest block goes there (a live tail's trickle fills
    // blocks); a larger one makes blocks of its own, of equal sizes: topping up the newest block
    // first re-encoded it whole for every batch (as much CPU as the batch's own blocks).
    const newest = this.s.newest.get(src) as StoredBlock | undefined
    if (newest !== undefined && newest.n + rest.length <= BLOCK_EVENTS) {
      const minTs = ts.reduce((m, t) => Math.min(m, t), Infinity)
      const appends = newest.max_off === null || rest.every((e) => { const o = addressed.get(e); return o === undefined || o > (newest.max_off as number) })
      if (appends && minTs - newest.max_ts < MERGE_WITHIN_US && this.grow(newest, rest, ts, addressed, seq)) rest = []
    }
    const blocks = Math.ceil(rest.length / BLOCK_EVENTS)
    for (let k = 0; k < blocks; k++) {
      const from = Math.floor((k * rest.length) / blocks)
      const to = Math.floor(((k + 1) * rest.length) / blocks)
      this.create(src, rest.slice(from, to), ts.slice(from, to), addressed, seq)
    }
  }

  /** Block `row` with its header decoded, or undefined when it cannot be (corrupt). */
  private readable (row: StoredBlock): DecodedBlock | undefined {
    try {
      return this.reader.block(row)
    } catch {
      return undefined
    }
  }

  /** The stored event at `at`, or undefined when its frame cannot be decoded (corrupt). */
  private storedEvent (at: { row: StoredBlock, i: number }): KeaEvent | undefined {
    try {
      return this.reader.block(at.row).event(at.i)
    } catch {
      return undefined
    }
  }

  /** Deletes a block whatever its payload holds (retention of a block that cannot be decoded), with its postings and ids. */
  dropBlock (id: number): void {
    this.s.dropPostings.run(id)
    this.s.dropIds.run(id)
    this.chain.droppedBlock(id, (this.s.blockN.get(id) as number | undefined) ?? 0)
    this.s.delBlock.run(id)
    this.reader.forget()
  }

  /** A new block of `events` (all of source `src`), `ts` their times (µs). */
  private create (src: string, events: KeaEvent[], ts: number[], addressed: Map<KeaEvent, number>, seq: number): void {
    const lines = linesOf(events, src, this.contextOf)
    const bits = newBloom()
    const s = summary(ts, events.map((e) => addressed.get(e)))
    // The id first: postings name the block, and the row is written once (a blob update rewrites it whole).
    const id = this.s.nextId.get() as number
    this.index(id, events, bits, addressed)
    this.placed.push({ block: id, pos: 0, events })
    this.s.insert.run(id, src, s.minTs, s.maxTs, s.minOff, s.maxOff, events.length, seq, this.codec, encodeTimes(ts), bloomFor(events.length, bits, this.codec), packLines(lines, this.codec), this.versionOf(lines))
  }

  /**
   * Appends `events` (`times`: theirs, µs) to block `row` of the same source (its id, postings and bloom bits stay).
   * False, having written nothing, when the block cannot be decoded (corrupted on disk): the
   * events then make a block of their own.
   */
  private grow (row: StoredBlock, events: KeaEvent[], times: readonly number[], addressed: Map<KeaEvent, number>, seq: number): boolean {
    const full = this.s.full.get(row.id) as FullBlock
    let old: BlockLines
    try {
      old = unpackLines(full.payload, full.codec)
    } catch {
      return false
    }
    const lines = linesOf(events, row.source_id, this.contextOf, old)
    const ts = [...decodeTimes(full.times, full.n), ...times]
    const bits = bloomOf(full)
    this.index(row.id, events, bits, addressed, full.n)
    this.placed.push({ block: row.id, pos: full.n, events })
    const s = summary(ts, events.map((e) => addressed.get(e)), row)
    this.s.update.run(s.minTs, s.maxTs, s.minOff, s.maxOff, ts.length, seq, this.codec, encodeTimes(ts), bloomFor(ts.length, bits, this.codec), packLines(lines, this.codec), this.versionOf(lines, full.pv), row.id)
    return true
  }

  /** Events re-imported with a better parse replace theirs in place (a stale posting only costs a decode). */
  private repair (row: StoredBlock, fixes: Array<{ i: number, e: KeaEvent }>, seq: number): void {
    const full = this.s.full.get(row.id) as FullBlock
    const lines = unpackLines(full.payload, full.codec)
    const bits = bloomOf(full)
    const ts = [...decodeTimes(full.times, full.n)]
    for (const f of fixes) {
      // A re-import that reads the record differently (a multi-line record joined now, line by
      // line before): the old text leaves its chain link as a removal does, the new one joins this batch's.
      const oldRaw = lines.originals[f.i] as string
      if (oldRaw !== f.e.event.original) {
        this.chain.replaced(row.id, f.i, { id: f.e.event.id, raw: oldRaw })
        this.placed.push({ block: row.id, pos: f.i, events: [f.e] })
      }
      replaceLine(lines, f.i, f.e, row.source_id, this.contextOf)
      ts[f.i] = isoToMicros(f.e['@timestamp'])
    }
    for (const f of fixes) this.index(row.id, [f.e], bits, new Map([[f.e, 0]]), f.i)
    const s = summary(ts, [], row)
    this.s.update.run(Math.min(s.minTs, row.min_ts), Math.max(s.maxTs, row.max_ts), row.min_off, row.max_off, ts.length, seq, this.codec, encodeTimes(ts), bloomFor(ts.length, bits, this.codec), packLines(lines, this.codec), this.versionOf(lines, full.pv), row.id)
  }

  /** Postings, bloom bits and (for ids that name no offset) id rows of `events` in block `id`. */
  /** `first`: the index in the block of events[0] (the rest follow it), which places each in its frame. */
  private index (id: number, events: readonly KeaEvent[], bits: Uint8Array, addressed: Map<KeaEvent, number>, first = 0): void {
    // A frame's terms, then a bit per frame per term: one upsert per distinct term.
    const masks = new Map<string, number>()
    const terms = this.terms
    terms.drain(() => {}) // nothing left from a write that failed halfway
    let frame = frameOf(first)
    const flush = (): void => {
      const bit = 2 ** frame
      terms.drain((t) => masks.set(t, (masks.get(t) ?? 0) | bit))
    }
    for (let j = 0; j < events.length; j++) {
      const e = events[j] as KeaEvent
      const k = frameOf(first + j)
      if (k !== frame) { flush(); frame = k }
      terms.add(e)
      bloomAddText(bits, e.message)
      if (!addressed.has(e)) this.s.addId.run(e.event.id, id)
    }
    flush()
    for (const [t, mask] of masks) this.s.posting.run(t, id, mask)
  }

  /**
   * Removes events from a block (keatrail store delete), or the whole block when none is left
   * (retention); its postings go with it. Returns the removed events.
   */
  remove (row: BlockRow, drop: (i: number) => boolean, seq: number): KeaEvent[] {
    const full = this.s.full.get(row.id) as FullBlock | undefined
    if (full === undefined) return []
    const lines = unpackLines(full.payload, full.codec)
    const ts = decodeTimes(full.times, full.n)
    const removed: KeaEvent[] = []
    const kept: KeaEvent[] = []
    const keptTs: number[] = []
    const b = this.reader.block(row)
    for (let i = 0; i < full.n; i++) {
      const e = b.event(i)
      if (drop(i)) removed.push(e)
      else { kept.push(e); keptTs.push(ts[i] as number) }
    }
    if (removed.length === 0) return []
    this.chain.removed(row.id, full.n, drop, (i) => ({ id: b.id(i), raw: b.original(i) }))
    // Every term of the removed events goes; the kept events' terms are put back below.
    // One collector for them all (eventTerms makes one per event): retention removes whole blocks.
    const terms = this.terms
    terms.drain(() => {})
    for (const e of removed) {
      terms.add(e)
      this.s.delId.run(e.event.id)
    }
    terms.drain((t) => this.s.unposting.run(t, row.id))
    if (kept.length === 0) {
      this.s.delBlock.run(row.id)
    } else {
      const rest = filterLines(lines, (i) => !drop(i))
      const bits = newBloom()
      const addressed = new Map<KeaEvent, number>()
      for (const e of kept) { const off = offsetOf(e, row.source_id); if (off !== undefined) addressed.set(e, off) }
      this.index(row.id, kept, bits, addressed)
      const s = summary(keptTs, kept.map((e) => addressed.get(e)))
      this.s.update.run(s.minTs, s.maxTs, s.minOff, s.maxOff, kept.length, seq, this.codec, encodeTimes(keptTs), bloomFor(kept.length, bits, this.codec), packLines(rest, this.codec), rest.ctx.some((c) => c >= 0) ? full.pv : null, row.id)
    }
    this.reader.forget()
    return removed
  }

  /**
   * A block's `pv` after a write: the lowest parser version among its re-derived events. `old`:
   * the block's before (its events not written now keep theirs).
   */
  private versionOf (lines: BlockLines, old: number | null = null): number | null {
    let v = old
    for (const c of this.contexts.values()) if (v === null || c.v < v) v = c.v
    return lines.ctx.some((c) => c >= 0) ? v : null
  }

  /** Deletes the chain's oldest links all of whose records are gone (after retention). */
  pruneChain (): number {
    return this.chain.prune()
  }

  nextSeq (): number {
    return this.s.seq.get() as number
  }
}

function summary (ts: readonly number[], offs: ReadonlyArray<number | undefined>, old?: StoredBlock): { minTs: number, maxTs: number, minOff: number | null, maxOff: number | null } {
  let minTs = old?.min_ts ?? Infinity
  let maxTs = old?.max_ts ?? -Infinity
  for (const t of ts) { if (t < minTs) minTs = t; if (t > maxTs) maxTs = t }
  let minOff = old?.min_off ?? null
  let maxOff = old?.max_off ?? null
  for (const o of offs) {
    if (o === undefined) continue
    if (minOff === null || o < minOff) minOff = o
    if (maxOff === null || o > maxOff) maxOff = o
  }
  return { minTs, maxTs, minOff, maxOff }
}

function statements (db: Database.Database) {
  return {
      overlapping: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, min_off, max_off FROM blocks WHERE source_id = ? AND max_off >= ? AND min_off <= ?'),
      idBlock: db.prepare('SELECT b.id, b.source_id, b.min_ts, b.max_ts, b.n, b.codec, b.seq, b.min_off, b.max_off FROM block_ids i JOIN blocks b ON b.id = i.block WHERE i.id = ?'),
      newest: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, min_off, max_off FROM blocks WHERE source_id = ? ORDER BY max_off DESC, id DESC LIMIT 1'),
      full: db.prepare('SELECT times, bloom, payload, n, codec, pv FROM blocks WHERE id = ?'),
      insert: db.prepare(`INSERT INTO blocks (id, source_id, min_ts, max_ts, min_off, max_off, n, seq, codec, times, bloom, payload, pv)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      nextId: db.prepare('SELECT coalesce(max(id), 0) + 1 FROM blocks').pluck(),
      update: db.prepare(`UPDATE blocks SET min_ts = ?, max_ts = ?, min_off = ?, max_off = ?, n = ?, seq = ?, codec = ?, times = ?, bloom = ?, payload = ?, pv = ?
        WHERE id = ?`),
      addContext: db.prepare('INSERT OR IGNORE INTO parse_contexts (spec) VALUES (?)'),
      contextId: db.prepare('SELECT id FROM parse_contexts WHERE spec = ?').pluck(),
      posting: db.prepare('INSERT INTO block_postings (term, block, frames) VALUES (?, ?, ?) ON CONFLICT (term, block) DO UPDATE SET frames = frames | excluded.frames'),
      unposting: db.prepare('DELETE FROM block_postings WHERE term = ? AND block = ?'),
      addId: db.prepare('INSERT OR REPLACE INTO block_ids (id, block) VALUES (?, ?)'),
      delId: db.prepare('DELETE FROM block_ids WHERE id = ?'),
      delBlock: db.prepare('DELETE FROM blocks WHERE id = ?'),
      blockN: db.prepare('SELECT n FROM blocks WHERE id = ?').pluck(),
      // No index by block: a full scan, only for a block that cannot be decoded.
      dropPostings: db.prepare('DELETE FROM block_postings WHERE block = ?'),
      dropIds: db.prepare('DELETE FROM block_ids WHERE block = ?'),
      seq: db.prepare('UPDATE meta SET value = value + 1 WHERE key = \'block_seq\' RETURNING value').pluck()
  }
}
