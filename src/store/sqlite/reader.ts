import type Database from 'better-sqlite3'
import { QueryBucketsError, StoreReadError, isCodedError, withCause } from '../../errors.js'
import type { KeaEvent } from '../../parse/event.js'
import { toSql } from '../../query/translate.js'
import {
  decodeTimeCursor, encodeCursor, evidenceLineOf, idsToGet, inIdOrder, MAX_BUCKETS, MAX_INTERVAL_MS, MAX_PAGE_BYTES, MAX_PAGE_SIZE, TOTAL_BOUND, withinBudget,
  type Bucket, type EventQuery, type EvidenceLine, type FilterField, type SearchPage, type SearchRequest, type SerializedPage, type TermCount
} from '../types.js'
import { DocBlocks } from './doc-blocks.js'
import { ipKey } from './ip-key.js'

/** Filter field → column of `events` (ip is answered from event_ips). Fixed: never user text. */
const COLUMNS: Record<Exclude<FilterField, 'ip'>, string> = {
  code: 'code',
  action: 'action',
  dataset: 'dataset',
  level: 'level',
  logger: 'logger',
  host: 'host',
  status: 'status',
  mac: 'mac',
  hwaddr: 'hwaddr',
  client_id: 'client_id',
  duid: 'duid',
  subnet_id: 'subnet_id',
  source_id: 'source_id'
}

interface Where { sql: string, params: unknown[] }
export interface StoredRow { rowid: number, id: string, doc: string }

/**
 * Every event read of the SQLite store, synchronous, on one connection: the store's own for
 * ':memory:' databases, a read-only connection of its own in each reader worker otherwise
 * (reader-worker.ts), so that no query runs on the event loop of the sources and the API.
 */
export class SqliteReader {
  private readonly docs: DocBlocks

  constructor (private readonly db: Database.Database, docs?: DocBlocks) {
    this.docs = docs ?? new DocBlocks(db)
  }

  /** The SQL condition on `events` matching `q` (also the writer's, for deletes). */
  where (q: EventQuery): Where {
    const parts: string[] = []
    const params: unknown[] = []
    if (q.from !== undefined) { parts.push('ts >= ?'); params.push(q.from * 1000) }
    if (q.to !== undefined) { parts.push('ts < ?'); params.push(q.to * 1000) }
    const fts = ftsQuery(q.text)
    if (fts !== undefined) {
      parts.push('rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)')
      params.push(fts)
    }
    for (const [field, values] of Object.entries(q.filters ?? {}) as Array<[FilterField, ReadonlyArray<string | number>]>) {
      if (values.length === 0) continue
      const marks = values.map(() => '?').join(', ')
      if (field === 'ip') {
        parts.push(`rowid IN (SELECT event FROM event_ips WHERE hex IN (${marks}))`)
        params.push(...values.map((v) => ipKey(String(v))))
        continue
      } else {
        const column = COLUMNS[field]
        if (column === undefined) throw new StoreReadError('sqlite', `unknown filter field ${JSON.stringify(field)}`)
        parts.push(`${column} IN (${marks})`)
      }
      params.push(...values.map((v) => field === 'subnet_id' ? Number(v) : String(v)))
    }
    if (q.where !== undefined) {
      const w = toSql(q.where)
      parts.push(w.sql)
      params.push(...w.params)
    }
    return { sql: parts.length === 0 ? '1' : parts.join(' AND '), params }
  }

  search (req: SearchRequest): SearchPage {
    const size = Math.min(Math.max(req.size ?? 100, 1), MAX_PAGE_SIZE)
    const desc = (req.sort ?? 'desc') === 'desc'
    const w = this.where(req)
    let sql = `SELECT rowid, id, doc, ts FROM events WHERE ${w.sql}`
    const params = [...w.params]
    if (req.cursor !== undefined) {
      const c = decodeTimeCursor(req.cursor)
      sql += desc ? ' AND (ts, id) < (?, ?)' : ' AND (ts, id) > (?, ?)'
      params.push(c.ts, c.id)
    }
    sql += desc ? ' ORDER BY ts DESC, id DESC' : ' ORDER BY ts ASC, id ASC'
    sql += ' LIMIT ?'
    params.push(size + 1)
    try {
      // Rows one at a time: the page stops at `size` events or at MAX_PAGE_BYTES of documents,
      // whichever comes first, and no document past it is read.
      const events: KeaEvent[] = []
      let bytes = 0
      let more = false
      let last: { ts: number, id: string } | undefined
      for (const r of this.db.prepare(sql).iterate(...params) as IterableIterator<StoredRow & { ts: number }>) {
        if (events.length === size) { more = true; break }
        const { event, size: n } = this.read(r)
        if (events.length > 0 && bytes + n > MAX_PAGE_BYTES) { more = true; break }
        bytes += n
        events.push(event)
        last = { ts: r.ts, id: r.id }
      }
      const total = (this.db.prepare(`SELECT count(*) AS n FROM (SELECT 1 FROM events WHERE ${w.sql} LIMIT ${TOTAL_BOUND + 1})`).get(...w.params) as { n: number }).n
      return {
        events,
        total: total > TOTAL_BOUND ? { value: TOTAL_BOUND, relation: 'gte' } : { value: total, relation: 'eq' },
        ...(more && last !== undefined ? { cursor: encodeCursor({ t: String(last.ts), id: last.id }) } : {})
      }
    } catch (err) {
      throw readError(err)
    }
  }

  /** The stored events among `ids`, in their order, up to MAX_PAGE_BYTES of documents (always the first found). */
  getMany (ids: readonly string[]): KeaEvent[] {
    const wanted = idsToGet(ids)
    if (wanted.length === 0) return []
    try {
      // Rowid order: events of one document block are inflated once, consecutively. Sizes
      // first, documents kept only for the events that fit (a 1,000-id read of large events
      // would otherwise hold them all).
      const rows = this.db.prepare(`SELECT rowid, id, doc FROM events WHERE id IN (${wanted.map(() => '?').join(', ')}) ORDER BY rowid`)
        .all(...wanted) as StoredRow[]
      const sizes = new Map(rows.map((r) => [r.id, this.read(r).size]))
      const kept = withinBudget(wanted.filter((id) => sizes.has(id)), (id) => sizes.get(id) ?? 0)
      const keep = new Set(kept)
      return inIdOrder(kept, new Map(rows.filter((r) => keep.has(r.id)).map((r) => [r.id, this.eventOf(r)])))
    } catch (err) {
      throw readError(err)
    }
  }

  /** A row's event: its own doc (rows from before schema 6) or its place in a document block. */
  eventOf (row: StoredRow): KeaEvent {
    return this.read(row).event
  }

  /** A row's event and the length of its document. */
  private read (row: StoredRow): { event: KeaEvent, size: number } {
    if (row.doc !== '') return { event: JSON.parse(row.doc) as KeaEvent, size: row.doc.length }
    for (let attempt = 0; attempt < 2; attempt++) {
      const doc = this.docs.read(row.rowid)
      if (doc === undefined) break
      const e = JSON.parse(doc) as KeaEvent
      if (e.event.id === row.id) return { event: e, size: doc.length }
      // A block cached before another connection (the writer, or keatrail run beside keatrail
      // serve) had retention delete every event, so that the rowid now belongs to a newer event.
      this.docs.forgetAll()
    }
    throw new StoreReadError('sqlite', `the document of event ${row.id} (row ${row.rowid}) is missing`)
  }

  count (q: EventQuery = {}): number {
    const w = this.where(q)
    try {
      return (this.db.prepare(`SELECT count(*) AS n FROM events WHERE ${w.sql}`).get(...w.params) as { n: number }).n
    } catch (err) {
      throw readError(err)
    }
  }

  histogram (q: EventQuery, intervalMs: number): Bucket[] {
    if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new StoreReadError('sqlite', 'the histogram interval must be a positive whole number of ms')
    // interval=999999999d made interval × 1000 overflow SQLite's int64 arithmetic.
    if (intervalMs > MAX_INTERVAL_MS) throw new QueryBucketsError(`an interval of at most ${MAX_INTERVAL_MS} ms (about 285 years), not ${intervalMs} ms`)
    const w = this.where(q)
    const step = intervalMs * 1000
    try {
      const rows = this.db.prepare(`SELECT (ts - ((ts % ${step}) + ${step}) % ${step}) / 1000 AS key, count(*) AS count
        FROM events WHERE ${w.sql} GROUP BY 1 ORDER BY 1 LIMIT ${MAX_BUCKETS + 1}`).all(...w.params) as Bucket[]
      if (rows.length > MAX_BUCKETS) throw new QueryBucketsError(`more than ${MAX_BUCKETS} buckets hold events; widen the interval or narrow the time range`)
      return rows
    } catch (err) {
      throw readError(err)
    }
  }

  top (field: FilterField, q: EventQuery, size: number): TermCount[] {
    const w = this.where(q)
    const n = Math.min(Math.max(Math.trunc(size), 1), 1000)
    const sql = field === 'ip'
      ? `SELECT ip AS value, count(*) AS count FROM event_ips WHERE event IN (SELECT rowid FROM events WHERE ${w.sql}) GROUP BY ip ORDER BY count DESC, value ASC LIMIT ${n}`
      : `SELECT ${COLUMNS[field]} AS value, count(*) AS count FROM events WHERE ${w.sql} AND ${COLUMNS[field]} IS NOT NULL GROUP BY 1 ORDER BY count DESC, value ASC LIMIT ${n}`
    try {
      return (this.db.prepare(sql).all(...w.params) as Array<{ value: string | number, count: number }>)
        .map((r) => ({ value: String(r.value), count: r.count }))
    } catch (err) {
      throw readError(err)
    }
  }
}

/** The reads a reader worker answers, by name: what crosses the thread boundary. */
export interface ReadOps {
  search: (req: SearchRequest) => SearchPage
  searchSerialized: (req: SearchRequest) => SerializedPage
  getMany: (ids: readonly string[]) => KeaEvent[]
  evidence: (ids: readonly string[]) => EvidenceLine[]
  count: (q?: EventQuery) => number
  histogram: (q: EventQuery, intervalMs: number) => Bucket[]
  top: (field: FilterField, q: EventQuery, size: number) => TermCount[]
}
export type ReadOp = keyof ReadOps
const READ_OPS: ReadonlySet<string> = new Set<ReadOp>(['search', 'searchSerialized', 'getMany', 'evidence', 'count', 'histogram', 'top'])

const utf8 = new TextEncoder()

/** A page with its events as UTF-8 JSON, made where the read ran (Store.searchSerialized). */
export function serializePage (page: SearchPage): SerializedPage {
  const { events, ...rest } = page
  // Encoded here, not by the HTTP response: the bytes are moved to the collector's thread (a
  // transfer, not a copy), which then neither copies ~100 KB of text out of the message, nor
  // encodes it, nor collects it.
  return { ...rest, eventsJson: utf8.encode(JSON.stringify(events)) }
}

/** Read `op` on `reader` (either layout's: they have the same read methods). */
export function runRead<K extends ReadOp> (reader: Pick<SqliteReader, Exclude<ReadOp, 'searchSerialized' | 'evidence'>> & { evidence?: ReadOps['evidence'] }, op: K, args: Parameters<ReadOps[K]>): ReturnType<ReadOps[K]> {
  if (!READ_OPS.has(op)) throw new StoreReadError('sqlite', `unknown read ${JSON.stringify(op)}`)
  if (op === 'searchSerialized') return serializePage(reader.search(...(args as Parameters<ReadOps['search']>))) as ReturnType<ReadOps[K]>
  if (op === 'evidence') {
    const [ids] = args as Parameters<ReadOps['evidence']>
    // The row layout has no cheaper way than its events.
    return (reader.evidence === undefined ? reader.getMany(ids).map(evidenceLineOf) : reader.evidence(ids)) as ReturnType<ReadOps[K]>
  }
  return (reader[op as Exclude<ReadOp, 'searchSerialized' | 'evidence'>] as (...a: unknown[]) => ReturnType<ReadOps[K]>).apply(reader, args)
}

/** Words to an FTS5 query: each quoted (no FTS syntax from users), all required. */
function ftsQuery (text: string | undefined): string | undefined {
  if (text === undefined) return undefined
  const words = text.split(/\s+/).filter((w) => w.length > 0)
  if (words.length === 0) return undefined
  return words.map((w) => `"${w.replaceAll('"', '""')}"`).join(' AND ')
}

export function readError (err: unknown): Error {
  if (isCodedError(err)) return err
  return withCause(new StoreReadError('sqlite', (err as Error).message), err)
}
