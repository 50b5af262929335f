import type Database from 'better-sqlite3'
import { containingPrefixLos } from '../../leases/address.js'
import { deriveIntervals, resumable } from '../../leases/derive.js'
import { compareObservations, sequenceOf } from '../../leases/observe.js'
import { clientMatchers } from '../../leases/query.js'
import { MAX_INTERVALS, type CollectionGap, type HistoryQuery, type LeaseInterval, type LeaseObservation, type LeaseStore } from '../../leases/types.js'
import { parseAddressOrPrefix } from '../../leases/address.js'

interface Row { doc: string }
interface ObsRow { event_id: string, key: string, ts: number, seq: string, doc: string }

/** An observation's doc without what its columns hold (a third of its bytes). */
function obsDoc (o: LeaseObservation): string {
  const { event_id: _id, key: _key, ts: _ts, seq: _seq, ...rest } = o
  return JSON.stringify(rest)
}

function obsOf (r: ObsRow): LeaseObservation {
  // Rows written before the doc was slimmed carry these fields twice; the columns win either way.
  return { ...(JSON.parse(r.doc) as Omit<LeaseObservation, 'event_id' | 'key' | 'ts' | 'seq'>), event_id: r.event_id, key: r.key, ts: r.ts, seq: r.seq }
}
/** The indexed columns of a stored interval: if they are unchanged an update need not touch the indexes. */
interface ExistingRow { id: string, hwaddr: string | null, client_id: string | null, duid: string | null, duid_ll: string | null, hostname: string | null, start: number | null }

function identityOf (iv: LeaseInterval): ExistingRow {
  return { id: iv.id, hwaddr: iv.hwaddr ?? null, client_id: iv.client_id ?? null, duid: iv.duid ?? null, duid_ll: iv.duid_ll ?? null, hostname: iv.hostname?.toLowerCase() ?? null, start: iv.start }
}

function sameIdentity (a: ExistingRow, b: ExistingRow): boolean {
  return a.hwaddr === b.hwaddr && a.client_id === b.client_id && a.duid === b.duid && a.duid_ll === b.duid_ll && a.hostname === b.hostname && a.start === b.start
}

/** When pending observations are derived (the store's `leaseDerivation` config). */
export interface DerivationPolicy { maxPending: number, maxDelayMs: number }

/**
 * Lease history in the SQLite store. The events are the record: a write commits them, and their
 * observations wait here (`enqueue`) to be derived in one transaction of their own (`flush`),
 * once `maxPending` have gathered, `maxDelayMs` after the first, before any lease read of this
 * process, and at close. Each commit rewrites every page it touched in the observation and
 * interval indexes (keyed by address and client, so scattered): deriving 20,000 observations at
 * a time instead of a write batch's few thousand cut the bytes written per event by more than
 * half (docs/BENCHMARKS.md). `meta.leases_through` is the greatest event rowid whose observations
 * are derived; on open the store re-observes the events after it (a crash loses no derivation).
 */
export class SqliteLeases implements LeaseStore {
  private pending: LeaseObservation[] = []
  private pendingThrough = 0
  /** The watermark as last read or written; -1: not known yet. */
  private through = -1
  private timer: NodeJS.Timeout | undefined
  private readonly getThrough: Database.Statement
  private readonly setThrough: Database.Statement
  private readonly insObs: Database.Statement
  private readonly startBefore: Database.Statement
  private readonly intervalBefore: Database.Statement
  private readonly obsFrom: Database.Statement
  private readonly obsAll: Database.Statement
  private readonly insInterval: Database.Statement
  private readonly updInterval: Database.Statement
  private readonly lastObs: Database.Statement
  private readonly lastInterval: Database.Statement
  private readonly windowIds: Database.Statement
  private readonly allIds: Database.Statement
  private readonly delId: Database.Statement
  private readonly upCoverage: Database.Statement

  constructor (private readonly db: Database.Database, private readonly policy: DerivationPolicy = { maxPending: 1, maxDelayMs: 0 }) {
    this.getThrough = db.prepare('SELECT value FROM meta WHERE key = \'leases_through\'')
    this.setThrough = db.prepare('UPDATE meta SET value = ? WHERE key = \'leases_through\'')
    this.insObs = db.prepare('INSERT OR IGNORE INTO lease_obs (event_id, key, ts, seq, doc) VALUES (?, ?, ?, ?, ?)')
    this.startBefore = db.prepare(`SELECT start, start_seq FROM lease_intervals WHERE key = ? AND origin = 'log' AND start < ?
      ORDER BY start DESC, start_seq DESC LIMIT 1`)
    this.intervalBefore = db.prepare(`SELECT doc FROM lease_intervals WHERE key = ? AND origin = 'log' AND start < ?
      ORDER BY start DESC, start_seq DESC LIMIT 1`)
    this.obsFrom = db.prepare('SELECT event_id, key, ts, seq, doc FROM lease_obs WHERE key = ? AND (ts > ? OR (ts = ? AND seq >= ?)) ORDER BY ts, seq')
    this.obsAll = db.prepare('SELECT event_id, key, ts, seq, doc FROM lease_obs WHERE key = ? ORDER BY ts, seq')
    this.windowIds = db.prepare(`SELECT id, hwaddr, client_id, duid, duid_ll, hostname, start FROM lease_intervals
      WHERE key = ? AND origin = 'log' AND (start >= ? OR (start IS NULL AND (end IS NULL OR end >= ?)))`)
    this.allIds = db.prepare('SELECT id, hwaddr, client_id, duid, duid_ll, hostname, start FROM lease_intervals WHERE key = ? AND origin = \'log\'')
    this.delId = db.prepare('DELETE FROM lease_intervals WHERE id = ?')
    this.insInterval = db.prepare(`INSERT OR REPLACE INTO lease_intervals
      (id, key, origin, scope, type, lo, hi, start, start_seq, pos_ts, pos_seq, end, hwaddr, client_id, duid, duid_ll, hostname, doc)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    // end and doc are in no index: a renewal rewrites the row, not the seven index entries.
    this.updInterval = db.prepare('UPDATE lease_intervals SET end = ?, doc = ? WHERE id = ?')
    this.lastObs = db.prepare('SELECT ts, seq FROM lease_obs WHERE key = ? ORDER BY ts DESC, seq DESC LIMIT 1')
    this.lastInterval = db.prepare(`SELECT doc FROM lease_intervals WHERE key = ? AND origin = 'log' ORDER BY pos_ts DESC, pos_seq DESC LIMIT 1`)
    this.upCoverage = db.prepare(`INSERT INTO coverage (scope, first, last) VALUES (?, ?, ?)
      ON CONFLICT (scope) DO UPDATE SET first = min(first, excluded.first), last = max(last, excluded.last)`)
  }

  /** The greatest event rowid whose observations are derived. */
  derivedThrough (): number {
    this.through = (this.getThrough.get() as { value: number }).value
    return this.through
  }

  /**
   * Observations of events just committed (rowids up to `throughRowid`), to be derived later;
   * derives them now if enough have gathered.
   */
  enqueue (obs: readonly LeaseObservation[], throughRowid: number): void {
    for (const o of obs) this.pending.push(o)
    if (throughRowid > this.pendingThrough) this.pendingThrough = throughRowid
    if (this.pending.length >= this.policy.maxPending) this.flush()
    else if (this.timer === undefined && (this.pending.length > 0 || this.pendingThrough > this.through)) {
      // Also when only the watermark moved (events without lease activity): recovery after a
      // crash re-reads everything past it.
      // A failed timed flush keeps its observations; the next write or read retries and reports it.
      this.timer = setTimeout(() => { this.timer = undefined; try { this.flush() } catch { /* kept pending */ } }, this.policy.maxDelayMs)
      this.timer.unref()
    }
  }

  /** Derives every pending observation in one transaction and moves the watermark past them. */
  flush (): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
    const through = this.pendingThrough
    if (this.pending.length === 0 && through <= this.derivedThrough()) return
    this.db.transaction(() => {
      this.apply(this.pending)
      if (through > this.derivedThrough()) { this.setThrough.run(through); this.through = through }
    })()
    this.pending = []
  }

  /** Retention deleted events: nothing pending (flushed first), so the watermark is the newest rowid left. */
  resetThrough (maxRowid: number): void {
    this.setThrough.run(maxRowid)
    this.pendingThrough = maxRowid
    this.through = maxRowid
  }

  /** Stops the flush timer (the store flushes before closing). */
  stop (): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
  }

  /**
   * Stores new observations and re-derives the affected keys. When a key's new observations
   * all follow the ones it had (the usual case: logs read in order), its last interval is
   * resumed with them; otherwise the key is re-derived from the last interval that started
   * before the earliest change (everything earlier cannot depend on it).
   */
  apply (obs: readonly LeaseObservation[]): void {
    const byKey = new Map<string, LeaseObservation[]>()
    for (const o of obs) {
      const list = byKey.get(o.key)
      if (list === undefined) byKey.set(o.key, [o])
      else list.push(o)
    }
    for (const [key, list] of byKey) {
      const last = this.lastObs.get(key) as { ts: number, seq: string } | undefined
      const fresh = list.filter((o) => this.insObs.run(o.event_id, o.key, o.ts, o.seq, obsDoc(o)).changes > 0)
      if (fresh.length === 0) continue
      fresh.sort(compareObservations)
      const first = fresh[0] as LeaseObservation
      if (last === undefined || first.ts > last.ts || (first.ts === last.ts && first.seq > last.seq)) this.extend(key, fresh)
      else this.rederive(key, first.ts)
    }
  }

  /** In-order observations: continue the fold where the stored history ends. */
  private extend (key: string, tail: LeaseObservation[]): void {
    const row = this.lastInterval.get(key) as Row | undefined
    const lastIv = row === undefined ? undefined : JSON.parse(row.doc) as LeaseInterval
    const fresh = lastIv !== undefined && resumable(lastIv) ? deriveIntervals(tail, undefined, lastIv) : deriveIntervals(tail, lastIv)
    // Resumed, the last interval comes back with its id; otherwise it stays as it is (unless
    // derivation hands it back with more evidence, which store() then rewrites).
    const existing = new Map<string, ExistingRow>()
    if (lastIv !== undefined) existing.set(lastIv.id, identityOf(lastIv))
    if (lastIv !== undefined && !fresh.some((iv) => iv.id === lastIv.id)) existing.delete(lastIv.id)
    this.store(fresh, existing)
  }

  /**
   * Re-derives `key` from the last interval that started before `from`: everything earlier is
   * unaffected by observations at or after `from` (see deriveIntervals).
   */
  private rederive (key: string, from: number): void {
    const anchor = this.startBefore.get(key, from) as { start: number, start_seq: string } | undefined
    let tail: LeaseObservation[]
    let before: LeaseInterval | undefined
    let rows: ExistingRow[]
    if (anchor === undefined) {
      tail = (this.obsAll.all(key) as ObsRow[]).map(obsOf)
      rows = this.allIds.all(key) as ExistingRow[]
    } else {
      tail = (this.obsFrom.all(key, anchor.start, anchor.start, anchor.start_seq) as ObsRow[]).map(obsOf)
      const b = this.intervalBefore.get(key, anchor.start) as Row | undefined
      before = b === undefined ? undefined : JSON.parse(b.doc) as LeaseInterval
      rows = this.windowIds.all(key, anchor.start, anchor.start) as ExistingRow[]
    }
    this.store(deriveIntervals(tail, before), new Map(rows.map((r) => [r.id, r])))
  }

  /** Writes derived intervals over `existing` (same id: updated in place), deleting the ones gone. */
  private store (fresh: readonly LeaseInterval[], existing: Map<string, ExistingRow>): void {
    for (const iv of fresh) {
      const old = existing.get(iv.id)
      existing.delete(iv.id)
      if (old !== undefined && sameIdentity(old, identityOf(iv))) this.updInterval.run(iv.end, JSON.stringify(iv), iv.id)
      else this.put(iv)
    }
    for (const id of existing.keys()) this.delId.run(id)
  }

  private put (iv: LeaseInterval): void {
    const first = iv.evidence[0]
    const seq = first === undefined ? '' : sequenceOf(first)
    this.insInterval.run(iv.id, iv.key, iv.origin, iv.scope, iv.type, iv.lo, iv.hi, iv.start,
      iv.start === null || first === undefined ? null : seq, iv.start ?? iv.end ?? 0, seq, iv.end,
      iv.hwaddr ?? null, iv.client_id ?? null, iv.duid ?? null, iv.duid_ll ?? null, iv.hostname?.toLowerCase() ?? null, JSON.stringify(iv))
  }

  /**
   * Retention: forgets lease history before `cutoff` (epoch ms), except the observations an
   * interval still reaching past the cutoff is derived from (re-derivation needs them).
   */
  prune (cutoff: number): void {
    this.flush()
    this.db.prepare('DELETE FROM lease_intervals WHERE end IS NOT NULL AND end < ?').run(cutoff)
    this.db.prepare(`DELETE FROM lease_obs WHERE ts < ? AND NOT EXISTS (SELECT 1 FROM lease_intervals i
      WHERE i.key = lease_obs.key AND i.origin = 'log' AND (i.end IS NULL OR i.end >= ?) AND (i.start IS NULL OR i.start <= lease_obs.ts))`).run(cutoff, cutoff)
    this.db.prepare('UPDATE coverage SET first = ? WHERE first < ?').run(cutoff, cutoff)
    this.db.prepare('DELETE FROM coverage WHERE last < first').run()
  }

  /**
   * Events replaced or deleted: their observations are removed and each key they shaped is
   * re-derived from before the earliest of them. Observations still pending (enqueued, not yet
   * derived) are not needed: they are applied afterwards as usual, onto the re-derived history.
   */
  withdraw (eventIds: readonly string[]): number {
    const del = this.db.prepare('DELETE FROM lease_obs WHERE event_id = ? RETURNING key, ts')
    const earliest = new Map<string, number>()
    for (const id of eventIds) {
      const r = del.get(id) as { key: string, ts: number } | undefined
      if (r !== undefined) earliest.set(r.key, Math.min(r.ts, earliest.get(r.key) ?? r.ts))
    }
    for (const [key, ts] of earliest) this.rederive(key, ts)
    return earliest.size
  }

  /**
   * Events of `scope` were deleted: its coverage shrinks to `left` (the span of the parsed events
   * left; none: no coverage), never widening what was there.
   */
  shrinkCoverage (scope: string, left: { first: number, last: number } | undefined): { from: number, to: number } | undefined {
    if (left === undefined) { this.db.prepare('DELETE FROM coverage WHERE scope = ?').run(scope); return undefined }
    const r = this.db.prepare('UPDATE coverage SET first = max(first, ?), last = min(last, ?) WHERE scope = ? RETURNING first, last').get(left.first, left.last, scope) as { first: number, last: number } | undefined
    if (r === undefined || r.last < r.first) { this.db.prepare('DELETE FROM coverage WHERE scope = ?').run(scope); return undefined }
    return { from: r.first, to: r.last }
  }

  /** Widens the collected time span of each scope by this batch's events. */
  cover (spans: ReadonlyMap<string, { first: number, last: number }>): void {
    for (const [scope, s] of spans) this.upCoverage.run(scope, s.first, s.last)
  }

  async intervalsAt (range: { lo: string, hi: string }, time: number, scope?: string): Promise<LeaseInterval[]> {
    this.flush()
    const los = containingPrefixLos(range.lo)
    const marks = los.map(() => '?').join(', ')
    const rows = this.db.prepare(`SELECT doc FROM lease_intervals
      WHERE lo IN (${marks}) AND hi >= ? AND (start IS NULL OR start <= ?) AND (end IS NULL OR end > ?)
      ${scope === undefined ? '' : 'AND scope = ?'} ORDER BY start, id LIMIT ${MAX_INTERVALS + 1}`)
      .all(...los, range.lo, time, time, ...(scope === undefined ? [] : [scope])) as Row[]
    return rows.map((x) => JSON.parse(x.doc) as LeaseInterval)
  }

  async neighbours (range: { lo: string, hi: string }, time: number, scope?: string): Promise<{ before?: LeaseInterval, after?: LeaseInterval }> {
    this.flush()
    const los = containingPrefixLos(range.lo)
    const marks = los.map(() => '?').join(', ')
    const sc = scope === undefined ? '' : 'AND scope = ?'
    const scp = scope === undefined ? [] : [scope]
    const before = this.db.prepare(`SELECT doc FROM lease_intervals WHERE lo IN (${marks}) AND hi >= ? AND end IS NOT NULL AND end <= ? ${sc}
      ORDER BY end DESC, id LIMIT 1`).get(...los, range.lo, time, ...scp) as Row | undefined
    const after = this.db.prepare(`SELECT doc FROM lease_intervals WHERE lo IN (${marks}) AND hi >= ? AND start > ? ${sc}
      ORDER BY start ASC, id LIMIT 1`).get(...los, range.lo, time, ...scp) as Row | undefined
    return {
      ...(before === undefined ? {} : { before: JSON.parse(before.doc) as LeaseInterval }),
      ...(after === undefined ? {} : { after: JSON.parse(after.doc) as LeaseInterval })
    }
  }

  async intervals (q: HistoryQuery): Promise<LeaseInterval[]> {
    this.flush()
    const parts: string[] = []
    const params: unknown[] = []
    if (q.address !== undefined || q.prefix !== undefined) {
      const r = parseAddressOrPrefix((q.address ?? q.prefix) as string)
      parts.push('lo = ? AND hi = ?')
      params.push(r.lo, r.hi)
    } else {
      const ors = clientMatchers(q).map((m) => {
        params.push(...m.values)
        return `${m.column} IN (${m.values.map(() => '?').join(', ')})`
      })
      parts.push(`(${ors.join(' OR ')})`)
    }
    if (q.from !== undefined) { parts.push('(end IS NULL OR end > ?)'); params.push(q.from) }
    if (q.to !== undefined) { parts.push('(start IS NULL OR start < ?)'); params.push(q.to) }
    if (q.scope !== undefined) { parts.push('scope = ?'); params.push(q.scope) }
    const rows = this.db.prepare(`SELECT doc FROM lease_intervals WHERE ${parts.join(' AND ')}
      ORDER BY coalesce(start, end), id LIMIT ?`).all(...params, Math.min(q.limit ?? 100_000, 100_000)) as Row[]
    return rows.map((x) => JSON.parse(x.doc) as LeaseInterval)
  }

  async coverage (scope?: string): Promise<{ from: number, to: number } | undefined> {
    const row = (scope === undefined
      ? this.db.prepare('SELECT min(first) AS f, max(last) AS l FROM coverage').get()
      : this.db.prepare('SELECT first AS f, last AS l FROM coverage WHERE scope = ?').get(scope)) as { f: number | null, l: number | null } | undefined
    if (row === undefined || row.f === null || row.l === null) return undefined
    return { from: row.f, to: row.l }
  }

  async recordGap (g: CollectionGap): Promise<void> {
    this.db.prepare('INSERT INTO gaps (scope, from_ts, to_ts, reason) VALUES (?, ?, ?, ?)').run(g.scope, g.from, g.to, g.reason)
  }

  async gapsIn (scope: string, from: number, to: number): Promise<CollectionGap[]> {
    const rows = this.db.prepare(`SELECT scope, from_ts AS "from", to_ts AS "to", reason FROM gaps
      WHERE from_ts < ? AND to_ts >= ? AND (scope = ? OR scope = '*' OR ? = '*') ORDER BY from_ts`).all(to, from, scope, scope) as CollectionGap[]
    return rows
  }

  async stats (): Promise<{ intervals: number, observations: number }> {
    this.flush()
    const n = (sql: string): number => (this.db.prepare(sql).get() as { n: number }).n
    return { intervals: n('SELECT count(*) AS n FROM lease_intervals'), observations: n('SELECT count(*) AS n FROM lease_obs') }
  }

  async scopes (): Promise<string[]> {
    return (this.db.prepare('SELECT scope FROM coverage ORDER BY scope').all() as Array<{ scope: string }>).map((r) => r.scope)
  }

  async writeKeaState (intervals: LeaseInterval[]): Promise<number> {
    this.flush()
    let n = 0
    const known = this.db.prepare('SELECT 1 FROM lease_intervals WHERE id = ?')
    this.db.transaction(() => {
      for (const iv of intervals) {
        const exists = known.get(iv.id) !== undefined
        if (!exists) n++
        this.put(iv)
      }
    })()
    return n
  }
}

