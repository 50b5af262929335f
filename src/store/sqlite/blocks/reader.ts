import type Database from 'better-sqlite3'
import { QueryBucketsError, StoreReadError } from '../../../errors.js'
import { PARSER_VERSION, type DerivationSpec } from '../../../parse/derivation.js'
import type { KeaEvent } from '../../../parse/event.js'
import { builtinRules } from '../../../parse/kea/rules.js'
import { Rederiver, underivedEvent } from '../../../parse/rederive.js'
import { compileQuery } from '../../../query/evaluate.js'
import type { QueryNode } from '../../../query/parse.js'
import {
  decodeTimeCursor, encodeCursor, idsToGet, inIdOrder, MAX_BUCKETS, MAX_INTERVAL_MS, MAX_PAGE_BYTES, MAX_PAGE_SIZE, TOTAL_BOUND, withinBudget,
  FILTER_FIELDS, type Bucket, type EventQuery, type EvidenceLine, type FilterField, type SearchPage, type SearchRequest, type TermCount
} from '../../types.js'
import { microsToIso } from '../../time.js'
import { readError } from '../reader.js'
import { BLOOM_RAW_FROM, bloomHas } from './bloom.js'
import { DecodedBlock, DeltaVarints, FRAME_EVENTS, framesFor, lowerBytes } from './codec.js'
import { decompress } from './compress.js'
import { planOf, type Plan } from './plan.js'

/** A block's summary row: what pruning reads before deciding to decode it. */
export interface BlockRow { id: number, source_id: string, min_ts: number, max_ts: number, n: number, codec: number, seq: number, pv: number | null }
/** A block a query must read, and which of its frames (bit k: frame k). */
export interface Candidate extends BlockRow { mask: number }
/** The blocks a query may reach in the order to read them, and which frames of each may hold matches (0: none). */
interface Reach { rows: readonly BlockRow[], maskOf: (row: BlockRow) => number }

/**
 * Work done only to complete a page's total once the page itself is full: at most this many
 * more blocks, and this many more events tested (each re-derived from its raw record, ~4 µs),
 * counted from when the page first held a hit more than its size (within a block too);
 * past either the total is reported as "at least" what was counted. A total is a hint on the
 * page: counting to 10,000 hits or 16 blocks was ~80 % of a page's cost when its query matched
 * densely (a MAC in 1.6 % of the events, every lease line of a /24: 43–67 ms a page against
 * 8–14 ms, bench/e2e --serve), and a MAC seen in every block of a year would make every first
 * page decode them all. `store.count` (the count endpoint) counts exactly.
 */
const TOTAL_EXTRA_BLOCKS = 4
const TOTAL_EXTRA_TESTS = 2048
/** Decoded blocks a reader keeps (LRU): pages of one query, the next page, the evidence of a lease answer. */
const CACHE_BLOCKS = 8

interface Hit { ts: number, id: string, block: number, i: number }

function compareHit (a: Hit, b: Hit): number {
  return a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** Term codes whose value a matching event's document holds verbatim as a JSON string (numbers excluded). */
const VERBATIM = new Set(['c', 'a', 'd', 'l', 'g', 'h', 'm', 'w', 'i', 'u', 'n', 's', 'o', 'k'])

/**
 * The text a matching event's raw record must then hold, in ASCII lower case (compared so), for
 * term `code:value`, or undefined when the raw record need not hold it (fields the parser or the
 * source adds). Identifiers come from the record: Kea prints hardware addresses, client ids and
 * DUIDs as lowercase colon hex (the parser lowercases what a command gave in capitals), an ECS
 * MAC is a hardware address, a client id or DUID ending, and a message ID and logger verbatim.
 */
function rawForm (code: string, value: string): string | undefined {
  switch (code) {
    case 'm': return value.toLowerCase().replaceAll('-', ':')
    case 'w': case 'i': case 'u': case 'c': case 'g': return value.toLowerCase()
  }
  return undefined
}

/**
 * A test of a block's events that every match passes, from the plan, run before any event is
 * parsed: its identifiers as the JSON strings a stored document must then hold (or the text a
 * re-derived event's raw record must), found by a byte search of the frame, and its words as
 * case-insensitive substrings of the document or the raw record (the message is stored in one of
 * them). A block holding a MAC holds it in a few of its 4,096 events; the others cost a Set lookup
 * instead of a JSON.parse (~3 µs) or a re-derivation (~6 µs). Words are tested only on ASCII text:
 * beyond it FTS5 folds diacritics. Undefined when the plan names nothing to test.
 */
export type BlockTest = (b: DecodedBlock, frame: number) => (i: number) => boolean

export function literalFilter (plan: Plan): BlockTest | undefined {
  const leaf = (p: Plan): BlockTest | undefined => {
    if (p.kind === 'tokens') {
      if (p.tokens.length === 0 || !p.tokens.every((t) => /^[a-z0-9_]+$/.test(t))) return undefined
      const words = p.tokens.map((t) => Buffer.from(t, 'latin1'))
      return (b, k) => {
        const sets = words.map((w) => b.linesWithWord(k, w))
        return (i) => sets.every((s) => s.has(i))
      }
    }
    if (p.kind === 'range') return v4RangeTest(p.lo, p.hi)
    if (p.kind !== 'term') return undefined
    const colon = p.term.indexOf(':')
    const code = p.term.slice(0, colon)
    const value = p.term.slice(colon + 1)
    let lit: string | undefined
    let raw = rawForm(code, value)
    if (VERBATIM.has(code)) lit = JSON.stringify(value)
    // An IPv4 address: its dotted quad is the only text Kea prints for it.
    const v4 = /^4:([0-9a-f]{8})$/.exec(value)
    if (code === 'p' && v4 !== null) {
      const h = v4[1] as string
      raw = [0, 2, 4, 6].map((i) => parseInt(h.slice(i, i + 2), 16)).join('.')
      lit = JSON.stringify(raw)
    }
    if (lit === undefined) return undefined
    const bytes = Buffer.from(lit, 'utf8')
    const rawBytes = raw === undefined ? undefined : lowerBytes(Buffer.from(raw, 'utf8'))
    return (b, k) => { const hits = b.linesWith(k, bytes, rawBytes); return (i) => hits.has(i) }
  }
  const build = (p: Plan): BlockTest | undefined => {
    const t = leaf(p)
    if (t !== undefined) return t
    if (p.kind === 'and') {
      // Identifier sets first: a word's test converts lines to text.
      const parts = [...p.parts].sort((x, y) => Number(x.kind === 'tokens') - Number(y.kind === 'tokens')).map(build).filter((f) => f !== undefined)
      return parts.length === 0 ? undefined : (b, k) => { const ts = parts.map((f) => f(b, k)); return (i) => ts.every((t) => t(i)) }
    }
    if (p.kind === 'or') {
      const parts = p.parts.map(build)
      if (parts.some((f) => f === undefined)) return undefined
      return (b, k) => { const ts = parts.map((f) => (f as BlockTest)(b, k)); return (i) => ts.some((t) => t(i)) }
    }
    return undefined
  }
  return build(plan)
}

/**
 * The test of an IPv4 range whose bounds share whole leading octets (a /8, /16, /24 …): an
 * address in it is printed starting with those octets and a dot, so a stored document holds
 * `"a.b.c.` and a raw record `a.b.c.`. Without it every event of the frames the range's postings
 * name was parsed or re-derived (bench/api: ip: a /24 in 1 h).
 */
function v4RangeTest (lo: string, hi: string): BlockTest | undefined {
  const a = /^p:4:([0-9a-f]{8})$/.exec(lo)?.[1]
  const b = /^p:4:([0-9a-f]{8})$/.exec(hi)?.[1]
  if (a === undefined || b === undefined) return undefined
  const octets: number[] = []
  for (let k = 0; k < 4 && a.slice(2 * k, 2 * k + 2) === b.slice(2 * k, 2 * k + 2); k++) octets.push(parseInt(a.slice(2 * k, 2 * k + 2), 16))
  if (octets.length === 0) return undefined
  const text = octets.join('.') + (octets.length < 4 ? '.' : '')
  const doc = Buffer.from(`"${text}`, 'utf8')
  const raw = Buffer.from(text, 'utf8')
  return (blk, k) => { const hits = blk.linesWith(k, doc, raw); return (i) => hits.has(i) }
}

/** Whether a block holds events re-derived by rules newer than those that indexed it (see derivation.ts). */
const stale = (row: BlockRow): boolean => row.pv !== null && row.pv < PARSER_VERSION

/** Posting lookups that name at most this many blocks fetch them by id instead of scanning the table. */
const BY_ID_BLOCKS = 512

/** A posting term or range every match of `plan` needs (and-ed in), if there is one. */
function requiredPosting (plan: Plan): (Plan & { kind: 'term' | 'range' }) | undefined {
  if (plan.kind === 'term' || plan.kind === 'range') return plan
  if (plan.kind === 'and') {
    for (const p of plan.parts) {
      const r = requiredPosting(p)
      if (r !== undefined) return r
    }
  }
  return undefined
}

/** Whether a query tests the message and time only: full text, no field. */
function textOnly (q: EventQuery): boolean {
  const only = (n: QueryNode): boolean => n.type === 'text' || (n.type === 'not' ? only(n.child) : (n.type === 'and' || n.type === 'or') && n.children.every(only))
  return Object.values(q.filters ?? {}).every((v) => v === undefined || v.length === 0) && (q.where === undefined || only(q.where))
}

/** Whether a query needs the events' documents (anything but its time range does). */
function needsDocs (q: EventQuery): boolean {
  if (q.where !== undefined) return true
  if (q.text !== undefined && q.text.trim() !== '') return true
  return Object.values(q.filters ?? {}).some((v) => v !== undefined && v.length > 0)
}

/**
 * Every event read of the block layout, synchronous, on one connection (a reader worker's, or
 * the store's own for ':memory:'): prune blocks by time and by the query's plan (postings,
 * token blooms), decode only the candidates, evaluate the query on their events in JavaScript,
 * and stop at the page bound. One engine for search, count, histogram and top values.
 */
export class BlockReader {
  private readonly cache = new Map<number, { seq: number, block: DecodedBlock }>()
  /** Events tested against a query so far (made from their blocks), a gauge of a read's work. */
  private tested = 0
  /**
   * Parsers per parse_contexts row met (a row never changes once written): whole events, and
   * message-only ones; or why the row cannot make one (missing, or not a spec this keatrail reads).
   */
  private readonly rederivers = new Map<number, { full: Rederiver, text: Rederiver } | string>()
  private readonly stmts: {
    context: Database.Statement
    newestContexts: Database.Statement
    inRange: Database.Statement
    all: Database.Statement
    times: Database.Statement
    payloadLength: Database.Statement
    payloadPart: Database.Statement
    bloom: Database.Statement
    term: Database.Statement
    range: Database.Statement
    termIn: Database.Statement
    rangeIn: Database.Statement
    byOffset: Database.Statement
    nearOffset: Database.Statement
    byId: Database.Statement
    total: Database.Statement
    byBlock: Database.Statement
    stale: Database.Statement
  }

  constructor (db: Database.Database) {
    this.stmts = {
      context: db.prepare('SELECT spec FROM parse_contexts WHERE id = ?').pluck(),
      newestContexts: db.prepare('SELECT id FROM parse_contexts ORDER BY id DESC LIMIT 16').pluck(),
      inRange: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE max_ts >= ? AND min_ts < ?'),
      all: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks'),
      times: db.prepare('SELECT times FROM blocks WHERE id = ?').pluck(),
      payloadLength: db.prepare('SELECT length(payload) FROM blocks WHERE id = ?').pluck(),
      payloadPart: db.prepare('SELECT substr(payload, ?, ?) FROM blocks WHERE id = ?').pluck(),
      bloom: db.prepare('SELECT bloom FROM blocks WHERE id = ?').pluck(),
      term: db.prepare('SELECT block, frames FROM block_postings WHERE term = ?'),
      range: db.prepare('SELECT block, frames FROM block_postings WHERE term BETWEEN ? AND ?'),
      termIn: db.prepare('SELECT block, frames FROM block_postings WHERE term = ? AND block IN (SELECT id FROM blocks WHERE max_ts >= ? AND min_ts < ?)'),
      rangeIn: db.prepare('SELECT block, frames FROM block_postings WHERE term BETWEEN ? AND ? AND block IN (SELECT id FROM blocks WHERE max_ts >= ? AND min_ts < ?)'),
      byOffset: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE source_id = ? AND max_off >= ? AND min_off <= ?'),
      nearOffset: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv, min_off FROM blocks WHERE source_id = ? AND max_off >= ? ORDER BY max_off LIMIT 4'),
      byId: db.prepare('SELECT b.id, b.source_id, b.min_ts, b.max_ts, b.n, b.codec, b.seq, b.pv FROM block_ids i JOIN blocks b ON b.id = i.block WHERE i.id = ?'),
      total: db.prepare('SELECT coalesce(sum(n), 0) FROM blocks').pluck(),
      byBlock: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE id = ?'),
      // From the covering index blocks_summary (schema 14): a scan of its ~45 pages at 10M events.
      stale: db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE pv < ?')
    }
  }

  /** Forgets decoded blocks: the writer rewrote some (tests and the store's own connection). */
  forget (): void {
    this.cache.clear()
  }

  block (row: BlockRow): DecodedBlock {
    // Keyed by id and write sequence: every write to a block gives it a new seq, and a block id
    // can be reused after the newest block was deleted (another connection's cache would be stale).
    const hit = this.cache.get(row.id)
    if (hit !== undefined && hit.seq === row.seq) {
      this.cache.delete(row.id)
      this.cache.set(row.id, hit)
      return hit.block
    }
    const length = this.stmts.payloadLength.get(row.id) as number | undefined
    if (length === undefined) throw new StoreReadError('sqlite', `block ${row.id} is gone`)
    // By range: the header, then each frame a query reaches (a block's row is ~130 KB, a frame
    // ~8 KB). Every read runs in one transaction (see read()), so the ranges come from one version.
    let times: DeltaVarints | undefined
    const b = new DecodedBlock({
      length,
      read: (offset, n) => {
        const part = this.stmts.payloadPart.get(offset + 1, n, row.id) as Buffer | undefined
        if (part === undefined || part.length !== n) throw new StoreReadError('sqlite', `block ${row.id} changed while it was read`)
        return part
      }
    }, row.codec, row.source_id, (ctx, raw, offset, i, messageOnly) => {
      const storedUs = (): number => {
        // Read only for a record without a time of its own (rare): a lookup of one event in a
        // cold block otherwise decoded 4,096 times for nothing.
        times ??= this.timesOf(row)
        return times.at(i)
      }
      const r = this.rederiver(ctx)
      if (typeof r === 'string') return underivedEvent(raw, offset, microsToIso(storedUs()), row.source_id, r)
      try {
        return (messageOnly ? r.text : r.full).derive(raw, offset, () => storedUs() / 1000)
      } catch (err) {
        // A record today's rules read as other than one event (a parser change): its raw record
        // still answers, marked, rather than the read failing.
        return underivedEvent(raw, offset, microsToIso(storedUs()), row.source_id, (err as Error).message)
      }
    })
    this.cache.set(row.id, { seq: row.seq, block: b })
    if (this.cache.size > CACHE_BLOCKS) this.cache.delete(this.cache.keys().next().value as number)
    return b
  }

  /**
   * Makes the parsers of the newest parse contexts before the first read asks: the first
   * re-derivation loads the Kea rules and compiles a pattern (~65 ms), which a fresh reader
   * worker would otherwise spend inside a read's deadline.
   */
  warm (): void {
    builtinRules()
    for (const id of this.stmts.newestContexts.all() as number[]) this.rederiver(id)
  }

  /**
   * The parsers of parse context `ctx`, or why there are none: a row deleted or damaged by hand
   * must not fail every read of its events (nor a reader worker's warm-up) — they are read from
   * their raw records, marked (underivedEvent).
   */
  private rederiver (ctx: number): { full: Rederiver, text: Rederiver } | string {
    let r = this.rederivers.get(ctx)
    if (r === undefined) {
      const spec = this.stmts.context.get(ctx) as string | undefined
      if (spec === undefined) {
        r = `parse context ${ctx} is missing`
      } else {
        try {
          const parsed = JSON.parse(spec) as DerivationSpec
          r = { full: new Rederiver(parsed), text: new Rederiver(parsed, true) }
        } catch (err) {
          r = `parse context ${ctx} is unreadable: ${(err as Error).message}`
        }
      }
      this.rederivers.set(ctx, r)
    }
    return r
  }

  times (row: BlockRow): Float64Array {
    return this.timesOf(row).all()
  }

  /** A block's event times, decoded as far as they are read (one event's: its evidence line). */
  private timesOf (row: BlockRow): DeltaVarints {
    return new DeltaVarints(this.stmts.times.get(row.id) as Buffer, row.n)
  }

  /**
   * The blocks that may hold matches of `q` (its time range, then its plan), each with the frames
   * that may: bit k for frame k (block_postings.frames; a word or no plan: every frame).
   */
  candidates (q: EventQuery): Candidate[] {
    const { rows, maskOf } = this.candidateRows(q)
    const out: Candidate[] = []
    for (const r of rows) {
      const mask = maskOf(r)
      if (mask !== 0) out.push({ ...r, mask })
    }
    return out
  }

  /**
   * The block rows `q` may reach, and the test that says which frames of one may hold matches
   * (0: none), for a scan that can stop early to run block by block: a page of a phrase found in
   * every block tested the blooms of all ~850 blocks of its 24 h (8 KiB each, ~13 ms of its
   * ~50) to read 5 of them.
   */
  private candidateRows (q: EventQuery): Reach & { rows: BlockRow[] } {
    const plan = planOf(q)
    if (plan.kind === 'none') return { rows: [], maskOf: () => 0 }
    const lo = (q.from ?? -8.64e15) * 1000
    const hi = (q.to ?? 8.64e15) * 1000
    const postings = new Map<Plan, Map<number, number>>()
    const blooms = new Map<number, Uint8Array>()
    const framesOf = (p: Plan & { kind: 'term' | 'range' }): Map<number, number> => {
      let m = postings.get(p)
      if (m === undefined) {
        m = new Map()
        // Within a time range, only the postings of its blocks leave SQLite: an IPv4 /24 has
        // 25,600 postings over a 10M-event file, 17 ms to hand to JavaScript for the 4 blocks of
        // an hour (65 % of a reader's time answering it); SQLite filters them in ~1 ms.
        const hits = (q.from === undefined && q.to === undefined
          ? p.kind === 'term' ? this.stmts.term.all(p.term) : this.stmts.range.all(p.lo, p.hi)
          : p.kind === 'term' ? this.stmts.termIn.all(p.term, lo, hi) : this.stmts.rangeIn.all(p.lo, p.hi, lo, hi)) as Array<{ block: number, frames: number }>
        for (const h of hits) m.set(h.block, (m.get(h.block) ?? 0) | h.frames)
        postings.set(p, m)
      }
      return m
    }
    const rows = this.rowsFor(q, lo, hi, plan, framesOf)
    const every = (row: BlockRow): number => 2 ** framesFor(row.n) - 1
    if (plan.kind === 'all') return { rows, maskOf: every }
    const bloomOf = (row: BlockRow): Uint8Array => {
      let b = blooms.get(row.id)
      if (b === undefined) {
        const bloom = this.stmts.bloom.get(row.id) as Buffer
        b = row.n >= BLOOM_RAW_FROM ? bloom : decompress(bloom, row.codec)
        blooms.set(row.id, b)
      }
      return b
    }
    const maskOf = (p: Plan, row: BlockRow): number => {
      switch (p.kind) {
        case 'all': return every(row)
        case 'none': return 0
        case 'term':
        case 'range': return framesOf(p).get(row.id) ?? 0
        case 'tokens': { const b = bloomOf(row); return p.tokens.every((t) => bloomHas(b, t)) ? every(row) : 0 }
        case 'and': {
          let m = every(row)
          for (const c of p.parts) { m &= maskOf(c, row); if (m === 0) break }
          return m
        }
        case 'or': {
          let m = 0
          for (const c of p.parts) m |= maskOf(c, row)
          return m
        }
      }
    }
    // Postings and blooms of a block older than the parser were built by older rules: scanned.
    return { rows, maskOf: (r) => stale(r) ? every(r) : maskOf(plan, r) }
  }

  /**
   * The block rows `q` may reach: when every match needs a posting term or range and it names
   * few blocks, those (and the blocks older than the parser, whose postings were built by older
   * rules), read by id; else every block in the time range. Before, a MAC asked for all time
   * read all 2,951 block rows of a 10M-event file per request (half a reader's time: 80
   * requests/s); a time range reads those whose newest event is after its start.
   */
  private rowsFor (q: EventQuery, lo: number, hi: number, plan: Plan, framesOf: (p: Plan & { kind: 'term' | 'range' }) => Map<number, number>): BlockRow[] {
    const needed = requiredPosting(plan)
    if (needed !== undefined) {
      const hits = framesOf(needed)
      if (hits.size <= BY_ID_BLOCKS) {
        const rows: BlockRow[] = []
        for (const id of hits.keys()) {
          const r = this.stmts.byBlock.get(id) as BlockRow | undefined
          if (r !== undefined && r.max_ts >= lo && r.min_ts < hi && !stale(r)) rows.push(r)
        }
        for (const r of this.stmts.stale.all(PARSER_VERSION) as BlockRow[]) if (r.max_ts >= lo && r.min_ts < hi) rows.push(r)
        return rows.sort((a, b) => a.id - b.id)
      }
    }
    return (q.from === undefined && q.to === undefined ? this.stmts.all.all() : this.stmts.inRange.all(lo, hi)) as BlockRow[]
  }

  /**
   * Calls `visit` for every event of `blocks` that matches `q`, block by block in the given order,
   * until it returns false. Without predicates beyond time only the times are read. `newestFirst`:
   * each block's events from its last (a block's events are mostly in time order, so a page of
   * the newest fills from the first ones tested); `reaches`: events at times it refuses are
   * neither tested nor visited.
   */
  private scan (q: EventQuery, { rows, maskOf }: Reach, visit: (row: BlockRow, ts: number, i: number, b: DecodedBlock | undefined, e: KeaEvent | undefined) => boolean, before?: (row: BlockRow) => boolean, withDocs = false, newestFirst = false, reaches?: (ts: number) => boolean): void {
    const docs = withDocs || needsDocs(q)
    const match = needsDocs(q) ? compileQuery(q) : undefined
    // A query of the message alone (full text) tests events re-derived without the Kea rules
    // (~4× cheaper); the visitor gets whole events only when it asked for them.
    const messageOnly = !withDocs && textOnly(q)
    const literal = match === undefined ? undefined : literalFilter(planOf(q))
    const lo = q.from === undefined ? -Infinity : q.from * 1000
    const hi = q.to === undefined ? Infinity : q.to * 1000
    for (const row of rows) {
      const mask = maskOf(row)
      if (mask === 0) continue
      if (before !== undefined && !before(row)) return
      const ts = this.times(row)
      const b = docs ? this.block(row) : undefined
      const frames = framesFor(row.n)
      for (let f = 0; f < frames; f++) {
        const k = newestFirst ? frames - 1 - f : f
        if ((mask & (2 ** k)) === 0) continue
        // Made when an event of the frame is first tested: one that `reaches` refuses whole
        // (the rest of a block past a page's cutoff) costs no byte search.
        let test: ((i: number) => boolean) | undefined | null = null
        const first = k * FRAME_EVENTS
        const count = Math.min(row.n, first + FRAME_EVENTS) - first
        for (let j = 0; j < count; j++) {
          const i = newestFirst ? first + count - 1 - j : first + j
          const t = ts[i] as number
          if (t < lo || t >= hi) continue
          if (reaches !== undefined && !reaches(t)) continue
          let e: KeaEvent | undefined
          if (b !== undefined) {
            if (test === null) test = stale(row) ? undefined : literal?.(b, k)
            if (test !== undefined && !test(i)) continue
            this.tested++
            e = b.event(i, messageOnly)
            if (match !== undefined && !match(e)) continue
          }
          if (!visit(row, t, i, b, e)) return
        }
      }
    }
  }

  /** Every event matching `q` with its block and index (the writer's deletes; the store's own connection). */
  forEach (q: EventQuery, fn: (row: BlockRow, i: number, e: KeaEvent) => void, withDocs = true): void {
    this.scan(q, this.candidateRows(q), (row, _ts, i, _b, e) => { fn(row, i, e as KeaEvent); return true }, undefined, withDocs)
  }

  /**
   * forEach, a block at a time: a block that cannot be decoded (damaged on disk) is skipped and
   * counted instead of ending the walk — for what must go on past damage (the lease wipes a
   * writer reads when it starts). Returns the blocks skipped.
   */
  forEachReadable (q: EventQuery, fn: (row: BlockRow, i: number, e: KeaEvent) => boolean | undefined): number {
    const reach = this.candidateRows(q)
    let skipped = 0
    let stop = false
    for (const row of reach.rows) {
      try {
        // `fn` returning false stops the walk.
        this.scan(q, { rows: [row], maskOf: reach.maskOf }, (r, _ts, i, _b, e) => { stop = fn(r, i, e as KeaEvent) === false; return !stop })
      } catch {
        skipped++
      }
      if (stop) break
    }
    return skipped
  }

  search (req: SearchRequest): SearchPage {
    const size = Math.min(Math.max(req.size ?? 100, 1), MAX_PAGE_SIZE)
    const desc = (req.sort ?? 'desc') === 'desc'
    let after: { ts: number, id: string } | undefined
    if (req.cursor !== undefined) {
      after = decodeTimeCursor(req.cursor)
    }
    try {
      const blocks = this.candidateRows(req)
      // Newest first: blocks by their newest event (oldest first: by their oldest); a block whose
      // range cannot reach past the page's last hit ends the scan.
      blocks.rows.sort(desc ? (a, b) => b.max_ts - a.max_ts : (a, b) => a.min_ts - b.min_ts)
      const better = desc ? (a: Hit, b: Hit) => compareHit(b, a) : compareHit
      const afterCursor = (h: Hit): boolean => after === undefined || (desc ? compareHit(h, { ...after, block: 0, i: 0 }) < 0 : compareHit(h, { ...after, block: 0, i: 0 }) > 0)
      let hits: Hit[] = []
      let total = 0
      let extra = 0
      let pageFull = false
      const rows = new Map<number, BlockRow>()
      /** The (size+1)-th best hit so far: the bound a block must beat to matter to the page. */
      const bound = (): Hit | undefined => hits.length > size ? hits[size] : undefined
      /** The time a hit must reach to enter the page once it holds size + 1 (strictly worse: skipped). */
      let cutoff: number | undefined
      const trim = (): void => {
        hits.sort(better)
        if (hits.length > size + 1) hits = hits.slice(0, size + 1)
        cutoff = hits.length > size ? (hits[size] as Hit).ts : undefined
      }
      let testsAtFull = 0
      /** Counting stopped at TOTAL_EXTRA_*: the total is "at least". */
      let cutShort = false
      /**
       * Once the page holds size + 1 hits and TOTAL_EXTRA_TESTS more were tested, events that
       * cannot enter it are no longer tested (nor counted): where a block matched densely (a
       * phrase in every tenth event) the page was full after ~1,000 events, and the rest of the
       * block and the next ones were tested to count them to TOTAL_BOUND.
       */
      let testsAtCutoff: number | undefined
      let skipping = false
      const reaches = (ts: number): boolean => !skipping || cutoff === undefined || (desc ? ts >= cutoff : ts <= cutoff)
      this.scan(req, blocks, (row, ts, i, b) => {
        total++
        if (cutoff !== undefined && !skipping) {
          testsAtCutoff ??= this.tested
          if (this.tested - testsAtCutoff > TOTAL_EXTRA_TESTS) { skipping = true; cutShort = true }
        }
        if (pageFull) return total <= TOTAL_BOUND
        // Most events of a time window cannot reach the page: counted, no id built for them.
        if (cutoff !== undefined && (desc ? ts < cutoff : ts > cutoff)) return true
        const id = b === undefined ? this.block(row).id(i) : b.id(i)
        const h: Hit = { ts, id, block: row.id, i }
        if (afterCursor(h)) {
          hits.push(h)
          rows.set(row.id, row)
          // Keep the best size + 1: sorted when the list doubles (amortised O(n log size)).
          if (hits.length > 2 * (size + 1)) trim()
        }
        return true
      }, (row) => {
        trim()
        const k = bound()
        if (!pageFull && k !== undefined && (desc ? row.max_ts < k.ts : row.min_ts > k.ts)) { pageFull = true; testsAtFull = this.tested }
        if (pageFull) extra++
        // Testing stopped (skipping) and no event of this block can enter the page: done.
        const stop = extra > TOTAL_EXTRA_BLOCKS || (pageFull && (skipping || this.tested - testsAtFull > TOTAL_EXTRA_TESTS))
        if (stop) cutShort = true
        return !stop
      }, false, desc, reaches)
      hits.sort(better)
      const counted = cutShort || total > TOTAL_BOUND
      const page = hits.slice(0, size)
      const events: KeaEvent[] = []
      let bytes = 0
      let cut = false
      for (const h of page) {
        const b = this.block(rows.get(h.block) as BlockRow)
        const n = b.size(h.i)
        if (events.length > 0 && bytes + n > MAX_PAGE_BYTES) { cut = true; break }
        bytes += n
        events.push(b.event(h.i))
      }
      const last = events.length > 0 ? page[events.length - 1] : undefined
      const more = cut || hits.length > size
      return {
        events,
        total: counted ? { value: Math.min(total, TOTAL_BOUND), relation: 'gte' } : { value: total, relation: 'eq' },
        ...(more && last !== undefined ? { cursor: encodeCursor({ t: String(last.ts), id: last.id }) } : {})
      }
    } catch (err) {
      throw readError(err)
    }
  }

  /**
   * The blocks that may hold the event `id`: by (source, offset) when it has that shape, else
   * by the id table. `near`: only the few blocks whose offset range ends first at or after the
   * offset — a source's blocks hold disjoint ranges but for repairs and replays, so the one
   * holding it is almost always among them. The index is (source_id, max_off): all the blocks
   * whose range ends after the offset matched it, each read from the table for its min_off —
   * half a source's blocks per lookup, ~1,500 at 10M events, 38 % of the readers' time
   * answering /leases/at (its evidence lines) at 98 requests/s.
   */
  private blocksOf (id: string, near: boolean): BlockRow[] {
    const dash = id.indexOf('-')
    if (dash > 0) {
      const suffix = id.slice(dash + 1)
      // Offsets are at most 13 hex digits (< 2^52); longer suffixes are hashes (journal cursors).
      if (/^[0-9a-f]{1,13}$/.test(suffix)) {
        const off = parseInt(suffix, 16)
        const rows = near
          ? (this.stmts.nearOffset.all(id.slice(0, dash), off) as Array<BlockRow & { min_off: number | null }>).filter((r) => r.min_off !== null && r.min_off <= off)
          : this.stmts.byOffset.all(id.slice(0, dash), off, off) as BlockRow[]
        if (rows.length > 0) return rows
      }
    }
    return near ? [] : this.stmts.byId.all(id) as BlockRow[]
  }

  /** Where an event is stored, or undefined: the blocks near its offset first, then every candidate. */
  locate (id: string): { row: BlockRow, i: number } | undefined {
    const tried = new Set<number>()
    for (const near of [true, false]) {
      for (const row of this.blocksOf(id, near)) {
        if (tried.has(row.id)) continue
        tried.add(row.id)
        const i = this.block(row).indexOf(id)
        if (i !== undefined) return { row, i }
      }
    }
    return undefined
  }

  getMany (ids: readonly string[]): KeaEvent[] {
    const wanted = idsToGet(ids)
    if (wanted.length === 0) return []
    try {
      const found = new Map<string, { row: BlockRow, i: number }>()
      for (const id of wanted) {
        const at = this.locate(id)
        if (at !== undefined) found.set(id, at)
      }
      const kept = withinBudget(wanted.filter((id) => found.has(id)), (id) => { const at = found.get(id) as { row: BlockRow, i: number }; return this.block(at.row).size(at.i) })
      const events = new Map<string, KeaEvent>()
      for (const id of kept) {
        const at = found.get(id) as { row: BlockRow, i: number }
        events.set(id, this.block(at.row).event(at.i))
      }
      return inIdOrder(kept, events)
    } catch (err) {
      throw readError(err)
    }
  }

  /**
   * What an evidence line shows of each stored event among `ids`, in their order: its raw
   * record and its time from the block's time column (a stored document's @timestamp as it is),
   * so that no event is re-derived, nor cloned whole to the thread that asked: /leases/at reads
   * ~25 of them per answer.
   */
  evidence (ids: readonly string[]): EvidenceLine[] {
    const out: EvidenceLine[] = []
    try {
      let bytes = 0
      for (const id of idsToGet(ids)) {
        const at = this.locate(id)
        if (at === undefined) continue
        const b = this.block(at.row)
        let time: string
        if (b.context(at.i) >= 0) time = microsToIso(this.timesOf(at.row).at(at.i))
        else time = (JSON.parse(b.doc(at.i)) as KeaEvent)['@timestamp']
        const line = b.original(at.i)
        // getMany's bound on what one answer carries (outsized syslog frames).
        bytes += line.length
        if (out.length > 0 && bytes > MAX_PAGE_BYTES) break
        out.push({ id, time, line })
      }
    } catch (err) {
      throw readError(err)
    }
    return out
  }

  count (q: EventQuery = {}): number {
    try {
      if (q.from === undefined && q.to === undefined && !needsDocs(q)) return this.stmts.total.get() as number
      let n = 0
      this.scan(q, this.candidateRows(q), () => { n++; return true })
      return n
    } catch (err) {
      throw readError(err)
    }
  }

  histogram (q: EventQuery, intervalMs: number): Bucket[] {
    if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new StoreReadError('sqlite', 'the histogram interval must be a positive whole number of ms')
    if (intervalMs > MAX_INTERVAL_MS) throw new QueryBucketsError(`an interval of at most ${MAX_INTERVAL_MS} ms (about 285 years), not ${intervalMs} ms`)
    const step = intervalMs * 1000
    try {
      const counts = new Map<number, number>()
      const bucketOf = (ts: number): number => (ts - (((ts % step) + step) % step)) / 1000
      const add = (key: number, n: number): void => {
        counts.set(key, (counts.get(key) ?? 0) + n)
        if (counts.size > MAX_BUCKETS) throw new QueryBucketsError(`more than ${MAX_BUCKETS} buckets hold events; widen the interval or narrow the time range`)
      }
      const reach = this.candidateRows(q)
      let blocks: readonly BlockRow[] = reach.rows
      if (!needsDocs(q)) {
        // A block inside the time range whose events all fall in one bucket adds its count
        // without reading its times: with hour buckets most blocks of a busy server do.
        const lo = q.from === undefined ? -Infinity : q.from * 1000
        const hi = q.to === undefined ? Infinity : q.to * 1000
        blocks = blocks.filter((row) => {
          if (row.min_ts < lo || row.max_ts >= hi || bucketOf(row.min_ts) !== bucketOf(row.max_ts)) return true
          add(bucketOf(row.min_ts), row.n)
          return false
        })
      }
      this.scan(q, { rows: blocks, maskOf: reach.maskOf }, (_row, ts) => { add(bucketOf(ts), 1); return true })
      return [...counts].sort((a, b) => a[0] - b[0]).map(([key, count]) => ({ key, count }))
    } catch (err) {
      throw readError(err)
    }
  }

  top (field: FilterField, q: EventQuery, size: number): TermCount[] {
    const n = Math.min(Math.max(Math.trunc(size), 1), 1000)
    const path = FILTER_FIELDS[field].split('.')
    try {
      const counts = new Map<string, number>()
      this.scan(q, this.candidateRows(q), (_row, _ts, _i, _b, e) => {
        const ev = e as KeaEvent
        if (field === 'ip') {
          // Each address once per event, as the SQLite row store's event_ips keyed by event.
          for (const ip of new Set(ev.related?.ip ?? [])) counts.set(ip, (counts.get(ip) ?? 0) + 1)
          return true
        }
        let v: unknown = ev
        for (const k of path) v = (v as Record<string, unknown> | undefined)?.[k]
        if (v !== undefined && v !== null) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1)
        return true
      }, undefined, true)
      // Ties by value as SQLite orders the column: numbers numerically (subnet ids), text bytewise.
      const byValue = field === 'subnet_id' ? (a: string, b: string) => Number(a) - Number(b) : (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
      return [...counts].map(([value, count]) => ({ value, count }))
        .sort((a, b) => b.count - a.count || byValue(a.value, b.value)).slice(0, n)
    } catch (err) {
      throw readError(err)
    }
  }
}
