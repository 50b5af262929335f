import type Database from 'better-sqlite3'
import { deriveIntervals, resumable } from '../src/leases/derive.js'
import { compareObservations, sequenceOf } from '../src/leases/observe.js'
import type { LeaseInterval, LeaseObservation } from '../src/leases/types.js'

// The write path of SqliteLeases before schema 10 (git show f89b3d1:src/store/sqlite/leases.ts),
// unchanged but for what bench/lease-derive does not call: the baseline it measures against, on
// a database with migrations 1-9. One lease_obs row per observation; per key and flush, reads
// of the last observation and interval before the fold.

interface Row { doc: string }
interface ObsRow { event_id: string, key: string, ts: number, seq: string, doc: string }

function obsDoc (o: LeaseObservation): string {
  const { event_id: _id, key: _key, ts: _ts, seq: _seq, ...rest } = o
  return JSON.stringify(rest)
}

function obsOf (r: ObsRow): LeaseObservation {
  return { ...(JSON.parse(r.doc) as Omit<LeaseObservation, 'event_id' | 'key' | 'ts' | 'seq'>), event_id: r.event_id, key: r.key, ts: r.ts, seq: r.seq }
}
interface ExistingRow { id: string, hwaddr: string | null, client_id: string | null, duid: string | null, duid_ll: string | null, hostname: string | null, start: number | null }

function identityOf (iv: LeaseInterval): ExistingRow {
  return { id: iv.id, hwaddr: iv.hwaddr ?? null, client_id: iv.client_id ?? null, duid: iv.duid ?? null, duid_ll: iv.duid_ll ?? null, hostname: iv.hostname?.toLowerCase() ?? null, start: iv.start }
}

function sameIdentity (a: ExistingRow, b: ExistingRow): boolean {
  return a.hwaddr === b.hwaddr && a.client_id === b.client_id && a.duid === b.duid && a.duid_ll === b.duid_ll && a.hostname === b.hostname && a.start === b.start
}

export class SqliteLeasesV1 {
  private pending: LeaseObservation[] = []
  private pendingThrough = 0
  private through = -1
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

  constructor (private readonly db: Database.Database, private readonly policy: { maxPending: number, maxDelayMs: number }) {
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
    this.updInterval = db.prepare('UPDATE lease_intervals SET end = ?, doc = ? WHERE id = ?')
    this.lastObs = db.prepare('SELECT ts, seq FROM lease_obs WHERE key = ? ORDER BY ts DESC, seq DESC LIMIT 1')
    this.lastInterval = db.prepare(`SELECT doc FROM lease_intervals WHERE key = ? AND origin = 'log' ORDER BY pos_ts DESC, pos_seq DESC LIMIT 1`)
  }

  derivedThrough (): number {
    this.through = (this.getThrough.get() as { value: number }).value
    return this.through
  }

  /** As before, without the maxDelayMs timer (the bench enqueues synchronously and flushes at the end). */
  enqueue (obs: readonly LeaseObservation[], throughRowid: number): void {
    for (const o of obs) this.pending.push(o)
    if (throughRowid > this.pendingThrough) this.pendingThrough = throughRowid
    if (this.pending.length >= this.policy.maxPending) this.flush()
  }

  flush (): void {
    const through = this.pendingThrough
    if (this.pending.length === 0 && through <= this.derivedThrough()) return
    this.db.transaction(() => {
      this.apply(this.pending)
      if (through > this.derivedThrough()) { this.setThrough.run(through); this.through = through }
    })()
    this.pending = []
  }

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

  private extend (key: string, tail: LeaseObservation[]): void {
    const row = this.lastInterval.get(key) as Row | undefined
    const lastIv = row === undefined ? undefined : JSON.parse(row.doc) as LeaseInterval
    const fresh = lastIv !== undefined && resumable(lastIv) ? deriveIntervals(tail, undefined, lastIv) : deriveIntervals(tail, lastIv)
    const existing = new Map<string, ExistingRow>()
    if (lastIv !== undefined) existing.set(lastIv.id, identityOf(lastIv))
    if (lastIv !== undefined && !fresh.some((iv) => iv.id === lastIv.id)) existing.delete(lastIv.id)
    this.store(fresh, existing)
  }

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
}
