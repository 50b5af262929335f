import Database from 'better-sqlite3'
import { StoreWriteError, withCause } from '../../errors.js'
import type { KeaEvent } from '../../parse/event.js'
import { isoToMicros } from '../time.js'
import { parsesBetter, type Bucket, type DeleteResult, type EventQuery, type FilterField, type SearchPage, type SearchRequest, type SerializedPage, type Store, type TermCount, type WriteResult } from '../types.js'
import { sqliteStoreConfigSchema, type SqliteStoreConfig } from './config.js'
import { checkpointNow, closeStore, openDatabase, storeHealth, usedBytes } from './open.js'
import { validateConfig } from '../../config/validate.js'
import { coverageSpans, observeAll, observeAllEither } from '../../leases/observe.js'
import { observeWipe, WIPE_ACTION, wipesOf, type LeaseWipe, type SubnetMap } from '../../leases/wipes.js'
import { byDomain, NO_DOMAINS, type LeaseDomains } from '../../leases/domains.js'
import type { LeaseObservation } from '../../leases/types.js'
import { SqliteLeases } from './leases.js'
import { SqliteSnapshots } from './snapshots.js'
import { DocBlocks } from './doc-blocks.js'
import { ipHex, ipKey } from './ip-key.js'
import { runRead, SqliteReader, type ReadOp, type ReadOps, type StoredRow } from './reader.js'
import { ReaderPool } from './reader-pool.js'
import { HealthCount } from './health-count.js'

/**
 * The embedded store's row layout (before issue 19): a row per event with ten indexes and FTS5
 * over messages, one SQLite file, WAL. Kept to read and convert files written in it
 * (`keatrail store migrate`) and as `store.layout: rows`; new stores use the block layout (store.ts).
 * Writes are one transaction per batch; `INSERT OR IGNORE` on event.id makes replays no-ops.
 */
export class SqliteRowStore implements Store {
  readonly kind = 'sqlite' as const
  readonly path: string
  private readonly db: Database.Database
  private readonly cfg: ReturnType<typeof sqliteStoreConfigSchema.parse>
  private readonly insertEvent: Database.Statement
  private readonly insertIp: Database.Statement
  private readonly insertFts: Database.Statement
  private readonly storedStatus: Database.Statement
  private readonly deleteEvent: Database.Statement
  private readonly writeTx: (events: readonly KeaEvent[]) => WriteResult & { fresh: KeaEvent[], lastRowid: number }
  readonly leases: SqliteLeases
  readonly snapshots: SqliteSnapshots
  private readonly docs: DocBlocks
  /** Reads on this connection: ':memory:' databases, `readers.workers: 0`, and lease backfill. */
  private readonly reader: SqliteReader
  private readonly pool: ReaderPool | undefined
  private readonly healthCount = new HealthCount(async () => await this.count({}))

  /** Lease domains (`leases.domains`): whose leases have one history. */
  private readonly domains: LeaseDomains

  /**
   * `subnets`: the configured Kea subnets (`leases.subnets`), `domains` the lease domains
   * (`leases.domains`), known before the first derivation (recovery on open).
   */
  constructor (config: SqliteStoreConfig, subnets?: SubnetMap, domains: LeaseDomains = NO_DOMAINS) {
    this.domains = domains
    this.cfg = validateConfig(sqliteStoreConfigSchema, config, 'store.sqlite')
    this.path = this.cfg.path
    const { db, from } = openDatabase(this.cfg)
    this.db = db
    this.leases = new SqliteLeases(this.db, this.cfg.leaseDerivation)
    if (subnets !== undefined) this.leases.subnets = subnets
    this.leases.domains = domains
    this.snapshots = new SqliteSnapshots(this.db)
    this.docs = new DocBlocks(this.db)
    this.reader = new SqliteReader(this.db, this.docs)
    // The wipes already stored (src/leases/wipes.ts): every derivation of a key consults them.
    this.leases.wipesStored = (limit) => {
      const wipes: LeaseWipe[] = []
      // At most `limit`, streamed: after a flood of wipe lines, reading them all made every start run out of memory.
      for (const r of this.db.prepare('SELECT rowid, id, doc FROM events WHERE action = ? ORDER BY rowid').iterate(WIPE_ACTION) as IterableIterator<StoredRow>) {
        if (wipes.length >= limit) break
        // A document that cannot be read fails its reads, not the writer: its wipe is not known.
        let w: LeaseWipe | undefined
        try { w = observeWipe(this.eventOf(r), domains) } catch { continue }
        if (w !== undefined) wipes.push(w)
      }
      return wipes
    }
    if (from === 1) this.backfillLeases()
    this.deriveAfterCrash()
    this.insertEvent = this.db.prepare(`INSERT OR IGNORE INTO events
      (id, ts, dataset, code, action, level, logger, host, status, mac, hwaddr, client_id, duid, client_ip, subnet_id, source_id, message, doc, kind, tid, hostname, iaid, client_hex)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, ?, ?)`)
    this.insertIp = this.db.prepare('INSERT OR IGNORE INTO event_ips (hex, ts, event, ip) VALUES (?, ?, ?, ?)')
    this.insertFts = this.db.prepare('INSERT INTO events_fts (rowid, message) VALUES (?, ?)')
    this.storedStatus = this.db.prepare('SELECT rowid, id, status, action, doc FROM events WHERE id = ?')
    this.deleteEvent = this.db.prepare('DELETE FROM events WHERE rowid = ?')
    this.writeTx = this.db.transaction((events: readonly KeaEvent[]) => {
      let written = 0
      let duplicates = 0
      let replaced = 0
      const rowids: number[] = []
      const docs: string[] = []
      const fresh: KeaEvent[] = []
      /** Rowids of events replaced by ones that parsed better; with an action, their observations go too. */
      const gone: number[] = []
      const withdrawn: string[] = []
      /** Their observations, which name the keys to re-derive (SqliteLeases.withdraw). */
      const withdrawnObs: LeaseObservation[] = []
      const insert = (e: KeaEvent, ts: number): Database.RunResult => this.insertEvent.run(
        e.event.id, ts, e.event.dataset, e.event.code ?? null, e.event.action ?? null, e.log.level ?? null,
        e.log.logger ?? null, e.host?.name ?? null, e.kea.parse.status, e.client?.mac ?? null, e.kea.hwaddr ?? null,
        e.kea.client_id ?? null, e.kea.duid ?? null, e.client?.ip ?? null, e.kea.subnet_id ?? null, e.kea.source_id ?? null,
        e.event.kind, e.kea.transaction_id ?? null, e.kea.hostname ?? null, e.kea.iaid ?? null, ipHex(e.client?.ip))
      for (const e of events) {
        const ts = isoToMicros(e['@timestamp'])
        let r = insert(e, ts)
        if (r.changes === 0) {
          // Event ids come from the source and offset, not the pattern: the same line imported
          // again with the right pattern after the wrong one. Only a duplicate that parsed at
          // all is looked up (one index probe), so a replay of unmatched lines costs nothing more.
          const old = e.kea.parse.status === 'unmatched' ? undefined : this.storedStatus.get(e.event.id) as (StoredRow & { status: string, action: string | null }) | undefined
          if (old === undefined || !parsesBetter(e.kea.parse.status, old.status)) { duplicates++; continue }
          // Deleted (the trigger takes its full-text and address rows) and stored anew: its
          // document block cannot be rewritten in place.
          if (old.action !== null) {
            withdrawn.push(e.event.id)
            for (const o of observeAllEither([this.eventOf(old)], this.domains)) withdrawnObs.push(o)
          }
          this.deleteEvent.run(old.rowid)
          gone.push(old.rowid)
          r = insert(e, ts)
          replaced++
        } else {
          written++
        }
        fresh.push(e)
        rowids.push(Number(r.lastInsertRowid))
        docs.push(JSON.stringify(e))
        this.insertFts.run(r.lastInsertRowid, e.message)
        const ips = e.related?.ip
        if (ips !== undefined) for (const ip of ips) this.insertIp.run(ipKey(ip), ts, r.lastInsertRowid, ip)
      }
      this.docs.write(rowids, docs)
      if (gone.length > 0) this.docs.pruneBlocksOf(gone)
      // The replaced events' old observations (a `partial` one may have had one): removed with
      // them, in this transaction, and their keys re-derived without them.
      if (withdrawn.length > 0) this.leases.withdraw(withdrawn, withdrawnObs)
      this.leases.cover(coverageSpans(events, this.domains))
      return { written, duplicates, deadLettered: 0, ...(replaced > 0 ? { replaced } : {}), fresh, lastRowid: rowids[rowids.length - 1] ?? 0 }
    })
    // Started on the first read; the schema is in place by now, so read-only connections can open.
    const r = this.cfg.readers
    this.pool = this.path === ':memory:' || r.workers === 0
      ? undefined
      : new ReaderPool({ path: this.path, layout: 'rows', workers: r.workers, queryTimeoutMs: r.queryTimeoutMs, maxQueued: r.maxQueued, cacheMiB: r.cacheMiB, nice: r.nice, busyTimeoutMs: this.cfg.busyTimeoutMs })
    const pool = this.pool
    if (pool !== undefined) {
      this.leases.remote = async (op, args) => await pool.run(op, args)
      this.snapshots.remote = async (op, args) => await pool.run(op, args)
    }
  }

  /** A database from before lease history: derive it from the events already stored. */
  private backfillLeases (): void {
    this.leases.settled(this.db.transaction(() => {
      const spans = new Map<string, { first: number, last: number }>()
      // A lease domain's servers: one span (their leases have one history).
      for (const r of byDomain(this.db.prepare('SELECT coalesce(host, \'\') AS scope, min(ts) AS f, max(ts) AS l FROM events GROUP BY 1').all() as Array<{ scope: string, f: number, l: number }>, this.domains)) {
        spans.set(r.scope, { first: Math.floor(r.f / 1000), last: Math.floor(r.l / 1000) })
      }
      this.leases.cover(spans)
      const page = this.db.prepare('SELECT rowid, id, doc FROM events WHERE action IS NOT NULL AND rowid > ? ORDER BY rowid LIMIT 5000')
      for (let after = 0; ;) {
        const rows = page.all(after) as StoredRow[]
        if (rows.length === 0) break
        after = (rows[rows.length - 1] as { rowid: number }).rowid
        this.leases.apply(observeAll(rows.map((r) => this.eventOf(r)), this.domains))
      }
    }))
  }

  /**
   * Observations of events stored after the lease watermark were pending in a process that
   * stopped before deriving them: derive them now, from the stored documents.
   */
  private deriveAfterCrash (): void {
    const page = this.db.prepare('SELECT rowid, id, doc FROM events WHERE rowid > ? AND action IS NOT NULL ORDER BY rowid LIMIT 5000')
    for (let after = this.leases.derivedThrough(); ;) {
      const rows = page.all(after) as StoredRow[]
      if (rows.length === 0) break
      after = (rows[rows.length - 1] as StoredRow).rowid
      const events = rows.map((r) => this.eventOf(r))
      this.leases.enqueue(observeAll(events, this.domains), after, wipesOf(events, this.domains))
    }
    this.leases.enqueue([], this.newestRowid())
    this.leases.flush()
  }

  async write (events: readonly KeaEvent[]): Promise<WriteResult> {
    if (events.length === 0) return { written: 0, duplicates: 0, deadLettered: 0 }
    try {
      // One transaction: all of the batch or none of it (better-sqlite3 rolls back on throw).
      const { fresh, lastRowid, ...result } = this.leases.settled(() => this.writeTx(events))
      // Only events stored now (new or replacing one that parsed worse): a replayed one was
      // observed when it was first stored.
      this.leases.enqueue(observeAll(fresh, this.domains), lastRowid, wipesOf(fresh, this.domains))
      return result
    } catch (err) {
      throw withCause(new StoreWriteError('sqlite', `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim()), err)
    }
  }

  async deleteEvents (q: EventQuery): Promise<DeleteResult> {
    this.leases.flush()
    const w = this.reader.where(q)
    const result: DeleteResult = { deleted: 0, rederived: 0, scopes: [] }
    this.leases.settled(this.db.transaction(() => {
      const spans = byDomain(this.db.prepare(`SELECT coalesce(host, '') AS scope, min(ts) AS f, max(ts) AS l FROM events WHERE ${w.sql} GROUP BY 1`).all(...w.params) as Array<{ scope: string, f: number, l: number }>, this.domains)
      // Their observations name the keys to re-derive: read before the documents go.
      const shaping = observeAllEither((this.db.prepare(`SELECT rowid, id, doc FROM events WHERE (${w.sql}) AND action IS NOT NULL`).all(...w.params) as StoredRow[]).map((r) => this.eventOf(r)), this.domains)
      const rows = this.db.prepare(`DELETE FROM events WHERE ${w.sql} RETURNING rowid, id, action`).all(...w.params) as Array<{ rowid: number, id: string, action: string | null }>
      result.deleted = rows.length
      if (rows.length === 0) return
      // Few: a lookup per deleted event's block; many: one pass over the blocks up to the last.
      if (rows.length <= 10_000) this.docs.pruneBlocksOf(rows.map((r) => r.rowid))
      else this.docs.prune(rows.reduce((m, r) => Math.max(m, r.rowid), 0))
      result.rederived = this.leases.withdraw(rows.filter((r) => r.action !== null).map((r) => r.id), shaping)
      for (const s of spans) {
        // Lines that did not parse say nothing about leases (see coverageSpans).
        const hosts = this.domains.hostsOf(s.scope)
        const byScope = s.scope === '' ? '(host IS NULL OR host = \'\')' : `host IN (${hosts.map(() => '?').join(', ')})`
        const args = s.scope === '' ? [] : hosts
        const left = this.db.prepare(`SELECT min(ts) AS f, max(ts) AS l FROM events WHERE ${byScope} AND status != 'unmatched'`).get(...args) as { f: number | null, l: number | null }
        const coverage = this.leases.shrinkCoverage(s.scope, left.f === null || left.l === null ? undefined : { first: Math.floor(left.f / 1000), last: Math.floor(left.l / 1000) })
        const entry: DeleteResult['scopes'][number] = { scope: s.scope, ...(coverage === undefined ? {} : { coverage }) }
        // A hole inside what is still covered, with no events of the scope left in it: answers
        // there must say "not covered", not "nobody held it".
        const hole = { from: Math.floor(s.f / 1000), to: Math.floor(s.l / 1000) }
        if (coverage !== undefined && hole.from > coverage.from && hole.to < coverage.to) {
          const inside = this.db.prepare(`SELECT 1 FROM events WHERE ${byScope} AND status != 'unmatched' AND ts >= ? AND ts <= ? LIMIT 1`).get(...args, s.f, s.l)
          if (inside === undefined) {
            this.db.prepare('INSERT INTO gaps (scope, from_ts, to_ts, reason) VALUES (?, ?, ?, ?)').run(s.scope, hole.from, hole.to, 'events deleted by keatrail store delete')
            entry.gap = hole
          }
        }
        result.scopes.push(entry)
      }
    }))
    // Rowids above the newest left may be handed out again: the watermark must not cover them.
    if (result.deleted > 0) this.leases.resetThrough(this.newestRowid())
    return result
  }

  /** A read on a reader worker, or on this connection when there are none. */
  private async read<K extends ReadOp> (op: K, ...args: Parameters<ReadOps[K]>): Promise<ReturnType<ReadOps[K]>> {
    if (this.pool !== undefined) return await this.pool.run(op, args)
    return runRead(this.reader, op, args)
  }

  async search (req: SearchRequest): Promise<SearchPage> {
    return await this.read('search', req)
  }

  async searchSerialized (req: SearchRequest): Promise<SerializedPage> {
    return await this.read('searchSerialized', req)
  }

  async get (id: string): Promise<KeaEvent | undefined> {
    return (await this.getMany([id]))[0]
  }

  async getMany (ids: readonly string[]): Promise<KeaEvent[]> {
    return await this.read('getMany', ids)
  }

  private eventOf (row: StoredRow): KeaEvent {
    return this.reader.eventOf(row)
  }

  async count (q: EventQuery = {}): Promise<number> {
    return await this.read('count', q)
  }

  async histogram (q: EventQuery, intervalMs: number): Promise<Bucket[]> {
    return await this.read('histogram', q, intervalMs)
  }

  async top (field: FilterField, q: EventQuery, size: number): Promise<TermCount[]> {
    return await this.read('top', field, q, size)
  }

  /**
   * Readiness, unauthenticated and polled (/readyz): it never waits behind queries. The main
   * connection and the reader pool must answer (a trivial statement; the pool's state); the event
   * count is the last one read, refreshed in the background by at most one count at a time, at
   * most every HEALTH_COUNT_MAX_AGE_MS.
   */
  async health (): Promise<{ ok: boolean, detail: string }> {
    return storeHealth(this.db, this.pool, this.healthCount, this.path)
  }

  /**
   * Deletes events older than maxAgeDays, then the oldest while the file is over maxSizeMiB,
   * and hands freed pages back (incremental vacuum: no full VACUUM in steady state).
   * Returns how many events were deleted.
   */
  applyRetention (now = Date.now()): number {
    this.leases.flush()
    let deleted = 0
    const { maxAgeDays, maxSizeMiB } = this.cfg.retention
    // RETURNING: the document blocks that may have lost their last event are those up to the
    // greatest rowid deleted; they are pruned once per pass, not per statement.
    let maxDeleted = 0
    const deleteRows = (stmt: Database.Statement, arg: number): number => {
      const rows = stmt.all(arg) as Array<{ rowid: number }>
      for (const r of rows) if (r.rowid > maxDeleted) maxDeleted = r.rowid
      deleted += rows.length
      return rows.length
    }
    const pruneDocs = (): void => { if (maxDeleted > 0) this.docs.prune(maxDeleted) }
    const delOlder = this.db.prepare('DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ts < ? ORDER BY ts LIMIT 10000) RETURNING rowid')
    if (maxAgeDays !== undefined) {
      const cutoff = (now - maxAgeDays * 86_400_000) * 1000
      while (deleteRows(delOlder, cutoff) > 0);
      pruneDocs()
      this.leases.prune(Math.floor(cutoff / 1000))
    }
    if (maxSizeMiB !== undefined) {
      const limit = maxSizeMiB * 1024 * 1024
      const delOldest = this.db.prepare('DELETE FROM events WHERE rowid IN (SELECT rowid FROM events ORDER BY ts LIMIT ?) RETURNING rowid')
      for (let round = 0; round < 1000 && this.usedBytes() > limit; round++) {
        const total = (this.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n
        if (total === 0) break
        deleteRows(delOldest, Math.max(1, Math.ceil(total * 0.05)))
        pruneDocs()
        const oldest = (this.db.prepare('SELECT min(ts) AS t FROM events').get() as { t: number | null }).t
        if (oldest !== null) this.leases.prune(Math.floor(oldest / 1000))
        checkpointNow(this.db, this.cfg.busyTimeoutMs)
        this.db.pragma('incremental_vacuum')
      }
    }
    if (deleted > 0) {
      // Rowids above the newest left may be handed out again: the watermark must not cover them.
      this.leases.resetThrough(this.newestRowid())
      this.db.pragma('incremental_vacuum')
    }
    return deleted
  }

  /** The rowid of the newest event row (0: none). */
  private newestRowid (): number {
    return (this.db.prepare('SELECT coalesce(max(rowid), 0) AS n FROM events').get() as { n: number }).n
  }

  /** Bytes of the database in use (pages minus free pages). */
  usedBytes (): number {
    return usedBytes(this.db)
  }

  async close (): Promise<void> {
    await closeStore(this.db, this.pool, this.leases)
  }
}
