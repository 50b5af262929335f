import type Database from 'better-sqlite3'
import { containingPrefixLos, parseAddressOrPrefix } from '../../leases/address.js'
import { intervalId } from '../../leases/derive.js'
import { clientMatchers } from '../../leases/query.js'
import { MAX_INTERVALS, type HistoryQuery, type LeaseInterval, type LeaseKey } from '../../leases/types.js'
import { LeaseHistoryDamagedError, StoreReadError, withCause } from '../../errors.js'
import { identForms, identText } from './ident-blob.js'
import { intervalOf, readObs, type Identity } from './lease-codec.js'

export interface Row { doc: string }

export interface LogRow extends Identity { rowid: number, kid: number, end: number | null, n: number, doc: string, obs: Buffer, key: string, scope: string, type: LeaseKey['type'], lease: string, lo: string, hi: string }

// Identifiers read back as text (ident-blob.ts: colon hex is stored as bytes).
export const LOG_COLS = 'l.rowid AS rowid, l.kid AS kid, l.pos AS pos, l.start AS start, l."end" AS "end", l.n AS n, ident_text(l.hwaddr) AS hwaddr, ident_text(l.client_id) AS client_id, ' +
  'ident_text(l.duid) AS duid, ident_text(l.duid_ll) AS duid_ll, l.hostname AS hostname, l.doc AS doc, l.obs AS obs, ' +
  'k.key AS key, k.scope AS scope, k.type AS type, k.lease AS lease, k.lo AS lo, k.hi AS hi'

export function keyOf (r: LeaseKey): LeaseKey {
  return { key: r.key, scope: r.scope, type: r.type, lease: r.lease, lo: r.lo, hi: r.hi }
}

/** SQL's order for answers: NULL first, then the id. */
export function byStartThenId (at: (iv: LeaseInterval) => number | null): (a: LeaseInterval, b: LeaseInterval) => number {
  return (a, b) => {
    const x = at(a) ?? -Infinity
    const y = at(b) ?? -Infinity
    return x !== y ? (x < y ? -1 : 1) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  }
}

/**
 * `decode` of key `key`'s stored rows (no SQL in it: an I/O error is not damage): whatever it
 * throws becomes LeaseHistoryDamagedError, and `onDamaged` hears the key (SqliteLeases.healing
 * rebuilds it).
 */
export function decodeStored<T> (key: string, decode: () => T, onDamaged: (key: string) => void): T {
  try {
    return decode()
  } catch (err) {
    onDamaged(key)
    throw withCause(new LeaseHistoryDamagedError(key, (err as Error).message), err)
  }
}

type Range = { lo: string, hi: string }

/** The lease reads a reader worker answers (reader-pool.ts), by name: what crosses the thread boundary. */
export interface LeaseReadOps {
  leaseIntervalsAt: (range: Range, time: number, scope?: string) => LeaseInterval[]
  leaseNeighbours: (range: Range, time: number, scope?: string) => { before?: LeaseInterval, after?: LeaseInterval }
  leaseIntervals: (q: HistoryQuery) => LeaseInterval[]
  /** Several histories in one read (seeding from Kea's lease state asks one per lease). */
  leaseIntervalsMany: (qs: readonly HistoryQuery[]) => LeaseInterval[][]
}
export type LeaseReadOp = keyof LeaseReadOps
const LEASE_READ_OPS: ReadonlySet<string> = new Set<LeaseReadOp>(['leaseIntervalsAt', 'leaseNeighbours', 'leaseIntervals', 'leaseIntervalsMany'])

export function isLeaseReadOp (op: string): op is LeaseReadOp {
  return LEASE_READ_OPS.has(op)
}

/**
 * The lease history's reads (intervals of an address at a time, its neighbours, a history by
 * address or client), on any connection to the store: the store's own, or a reader worker's —
 * where histories run when the store has reader workers, so that thousands of intervals (a
 * client's, up to 100,000) are read, decoded and parsed on no thread that collects or answers
 * HTTP (issue 19: reads off the collector's event loop; SqliteLeases.read says which go where). A stored row that cannot be decoded
 * fails the read with KEATRAIL_ERR_LEASE_HISTORY_DAMAGED; `onDamaged` hears its key (the store's
 * connection rebuilds it: SqliteLeases.healing).
 */
export class LeaseReader {
  constructor (private readonly db: Database.Database, private readonly onDamaged: (key: string) => void = () => {}) {
    // Registered per connection; the store's registers it again (same function).
    db.function('ident_text', { deterministic: true }, identText)
  }

  /**
   * Statements by their text, prepared once: their shapes are few (an address family's
   * containing prefixes, a scope or not, a history's fields), and preparing the six of an answer
   * each time was ~0.2 ms of /leases/at's ~2.4 ms on the collector's thread (bench/api 10M).
   */
  private readonly statements = new Map<string, Database.Statement>()

  private prepare (sql: string): Database.Statement {
    let st = this.statements.get(sql)
    if (st === undefined) {
      // Bounded: history queries combine fields; 256 shapes is far more than are used.
      if (this.statements.size >= 256) this.statements.clear()
      st = this.db.prepare(sql)
      this.statements.set(sql, st)
    }
    return st
  }

  run<K extends LeaseReadOp> (op: K, args: Parameters<LeaseReadOps[K]>): ReturnType<LeaseReadOps[K]> {
    if (op === 'leaseIntervalsAt') return this.intervalsAt(...(args as Parameters<LeaseReadOps['leaseIntervalsAt']>)) as ReturnType<LeaseReadOps[K]>
    if (op === 'leaseNeighbours') return this.neighbours(...(args as Parameters<LeaseReadOps['leaseNeighbours']>)) as ReturnType<LeaseReadOps[K]>
    if (op === 'leaseIntervals') return this.intervals(...(args as Parameters<LeaseReadOps['leaseIntervals']>)) as ReturnType<LeaseReadOps[K]>
    if (op === 'leaseIntervalsMany') return (args[0] as readonly HistoryQuery[]).map((q) => this.intervals(q)) as ReturnType<LeaseReadOps[K]>
    throw new StoreReadError('sqlite', `unknown read ${JSON.stringify(op)}`)
  }

  /** Log intervals of the given rows. */
  private decode (rows: readonly LogRow[]): LeaseInterval[] {
    return rows.map((r) => decodeStored(r.key, () => {
      const k = keyOf(r)
      return intervalOf(k, r, readObs(r.obs, k).map((o) => o.event_id), intervalId)
    }, this.onDamaged))
  }

  /** `lo IN (…) AND hi >= ?` over lease_keys: the keys whose range contains the address. */
  private containing (range: { lo: string }, scope: string | undefined): { sql: string, params: unknown[] } {
    const los = containingPrefixLos(range.lo)
    return {
      sql: `k.lo IN (${los.map(() => '?').join(', ')}) AND k.hi >= ?${scope === undefined ? '' : ' AND k.scope = ?'}`,
      params: [...los, range.lo, ...(scope === undefined ? [] : [scope])]
    }
  }

  intervalsAt (range: Range, time: number, scope?: string): LeaseInterval[] {
    const los = containingPrefixLos(range.lo)
    const marks = los.map(() => '?').join(', ')
    const rows = this.prepare(`SELECT doc FROM lease_intervals
      WHERE lo IN (${marks}) AND hi >= ? AND (start IS NULL OR start <= ?) AND (end IS NULL OR end > ?)
      ${scope === undefined ? '' : 'AND scope = ?'} ORDER BY start, id LIMIT ${MAX_INTERVALS + 1}`)
      .all(...los, range.lo, time, time, ...(scope === undefined ? [] : [scope])) as Row[]
    const c = this.containing(range, scope)
    const log = this.prepare(`SELECT ${LOG_COLS} FROM lease_keys k JOIN lease_log l ON l.kid = k.kid
      WHERE ${c.sql} AND (l.start IS NULL OR l.start <= ?) AND (l."end" IS NULL OR l."end" > ?)`).all(...c.params, time, time) as LogRow[]
    return [...rows.map((x) => JSON.parse(x.doc) as LeaseInterval), ...this.decode(log)]
      .sort(byStartThenId((iv) => iv.start)).slice(0, MAX_INTERVALS + 1)
  }

  neighbours (range: Range, time: number, scope?: string): { before?: LeaseInterval, after?: LeaseInterval } {
    const los = containingPrefixLos(range.lo)
    const marks = los.map(() => '?').join(', ')
    const sc = scope === undefined ? '' : 'AND scope = ?'
    const scp = scope === undefined ? [] : [scope]
    const kb = this.prepare(`SELECT doc FROM lease_intervals WHERE lo IN (${marks}) AND hi >= ? AND end IS NOT NULL AND end <= ? ${sc}
      ORDER BY end DESC, id LIMIT 1`).get(...los, range.lo, time, ...scp) as Row | undefined
    const ka = this.prepare(`SELECT doc FROM lease_intervals WHERE lo IN (${marks}) AND hi >= ? AND start > ? ${sc}
      ORDER BY start ASC, id LIMIT 1`).get(...los, range.lo, time, ...scp) as Row | undefined
    const c = this.containing(range, scope)
    // Every row at the nearest end (start) time: ties are broken by the id, which is no column.
    const lb = this.prepare(`WITH c AS (SELECT ${LOG_COLS} FROM lease_keys k JOIN lease_log l ON l.kid = k.kid
      WHERE ${c.sql} AND l."end" IS NOT NULL AND l."end" <= ?) SELECT * FROM c WHERE "end" = (SELECT max("end") FROM c)`).all(...c.params, time) as LogRow[]
    const la = this.prepare(`WITH c AS (SELECT ${LOG_COLS} FROM lease_keys k JOIN lease_log l ON l.kid = k.kid
      WHERE ${c.sql} AND l.start > ?) SELECT * FROM c WHERE start = (SELECT min(start) FROM c)`).all(...c.params, time) as LogRow[]
    const befores = [...(kb === undefined ? [] : [JSON.parse(kb.doc) as LeaseInterval]), ...this.decode(lb)]
      .sort((a, b) => (b.end ?? 0) - (a.end ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const afters = [...(ka === undefined ? [] : [JSON.parse(ka.doc) as LeaseInterval]), ...this.decode(la)].sort(byStartThenId((iv) => iv.start))
    const before = befores[0]
    const next = afters[0]
    return {
      ...(before === undefined ? {} : { before }),
      ...(next === undefined ? {} : { after: next })
    }
  }

  intervals (q: HistoryQuery): LeaseInterval[] {
    const limit = Math.min(q.limit ?? 100_000, 100_000)
    const parts: string[] = []
    const params: unknown[] = []
    const logParts: string[] = []
    const logParams: unknown[] = []
    if (q.address !== undefined || q.prefix !== undefined) {
      const r = parseAddressOrPrefix((q.address ?? q.prefix) as string)
      parts.push('lo = ? AND hi = ?')
      params.push(r.lo, r.hi)
      logParts.push('k.lo = ? AND k.hi = ?')
      logParams.push(r.lo, r.hi)
    } else {
      const ms = clientMatchers(q)
      const ors = ms.map((m) => {
        params.push(...m.values)
        return `${m.column} IN (${m.values.map(() => '?').join(', ')})`
      })
      parts.push(`(${ors.join(' OR ')})`)
      const lors = ms.map((m) => {
        const values = m.column === 'hostname' ? m.values : m.values.flatMap(identForms)
        logParams.push(...values)
        return `l.${m.column} IN (${values.map(() => '?').join(', ')})`
      })
      logParts.push(`(${lors.join(' OR ')})`)
    }
    if (q.from !== undefined) {
      parts.push('(end IS NULL OR end > ?)'); params.push(q.from)
      logParts.push('(l."end" IS NULL OR l."end" > ?)'); logParams.push(q.from)
    }
    if (q.to !== undefined) {
      parts.push('(start IS NULL OR start < ?)'); params.push(q.to)
      logParts.push('(l.start IS NULL OR l.start < ?)'); logParams.push(q.to)
    }
    if (q.scope !== undefined) {
      parts.push('scope = ?'); params.push(q.scope)
      logParts.push('k.scope = ?'); logParams.push(q.scope)
    }
    const rows = this.prepare(`SELECT doc FROM lease_intervals WHERE ${parts.join(' AND ')}
      ORDER BY coalesce(start, end), id LIMIT ?`).all(...params, limit) as Row[]
    const where = `FROM lease_log l JOIN lease_keys k ON k.kid = l.kid WHERE ${logParts.join(' AND ')}`
    let log = this.prepare(`SELECT ${LOG_COLS} ${where} ORDER BY coalesce(l.start, l."end") LIMIT ?`).all(...logParams, limit) as LogRow[]
    const last = log[log.length - 1]
    if (log.length === limit && last !== undefined) {
      // Rows tied with the last one at the limit: the id decides which of them are in.
      const at = last.start ?? last.end
      const seen = new Set(log.map((r) => r.rowid))
      const ties = this.prepare(`SELECT ${LOG_COLS} ${where} AND coalesce(l.start, l."end") ${at === null ? 'IS NULL' : '= ?'}`)
        .all(...logParams, ...(at === null ? [] : [at])) as LogRow[]
      log = [...log, ...ties.filter((r) => !seen.has(r.rowid))]
    }
    return [...rows.map((x) => JSON.parse(x.doc) as LeaseInterval), ...this.decode(log)]
      .sort(byStartThenId((iv) => iv.start ?? iv.end)).slice(0, limit)
  }
}
