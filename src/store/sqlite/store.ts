import type Database from 'better-sqlite3'
import { StoreLayoutError, StoreWriteError, withCause } from '../../errors.js'
import type { KeaEvent } from '../../parse/event.js'
import { coverageSpans, observeAll, observeAllEither } from '../../leases/observe.js'
import { observeWipe, WIPE_ACTION, wipesOf, type LeaseWipe, type SubnetMap } from '../../leases/wipes.js'
import { NO_DOMAINS, type LeaseDomains } from '../../leases/domains.js'
import { isoMillis } from '../../parse/time/iso.js'
import { validateConfig } from '../../config/validate.js'
import type { Bucket, ChainHead, ChainProof, ChainReport, ChainVerifyOptions, DeleteResult, EventQuery, EvidenceLine, FilterField, SearchPage, SearchRequest, SerializedPage, Store, TermCount, WriteOptions, WriteResult } from '../types.js'
import { runRead, type ReadOps } from './reader.js'
import { sqliteStoreConfigSchema, type SqliteStoreConfig } from './config.js'
import { SqliteLeases } from './leases.js'
import { checkpointNow, closeStore, openDatabase, storeHealth, usedBytes } from './open.js'
import { ReaderPool } from './reader-pool.js'
import { SqliteSnapshots } from './snapshots.js'
import { BlockReader, type BlockRow } from './blocks/reader.js'
import { BlockWriter } from './blocks/writer.js'
import { chainHead, chainProofs, verifyChain } from './chain.js'
import { CODECS, WRITE_CODEC } from './blocks/compress.js'
import { HealthCount } from './health-count.js'

/**
 * Size retention keeps every Kea snapshot of the last day (a day at 30 s polls is 2,880 per
 * server and service: what the UI's utilization charts and an incident review of yesterday read)
 * and thins older ones to one per SNAPSHOT_THIN_MS. Constants, not settings: the trade-off is
 * the same for every site, and maxAgeDays / maxSizeMiB stay the only knobs of retention.
 */
const SNAPSHOT_FULL_RESOLUTION_MS = 86_400_000
const SNAPSHOT_THIN_MS = 3_600_000
/**
 * The share of maxSizeMiB the snapshots keep before events go: beyond it the oldest snapshots go
 * first, within it events do. Giving way wholly (a review found it) left a store whose events
 * fill the limit, as any store at its limit, with no snapshot history at all but the newest.
 */
const SNAPSHOT_SHARE = 0.25

export type BlockReadOps = Pick<BlockReader, 'search' | 'getMany' | 'evidence' | 'count' | 'histogram' | 'top'> & Pick<ReadOps, 'searchSerialized'>

/**
 * The embedded store in the block layout (issue 19): events in compressed blocks of up to 4,096
 * of one source, with per-block postings for identifiers and a token bloom for full text
 * (src/store/sqlite/blocks/), in one SQLite file (WAL) beside the lease history and snapshots.
 * A write is one transaction per batch; replays are recognised by (source, offset) or id.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const
  readonly layout = 'blocks' as const
  readonly path: string
  private readonly db: Database.Database
  private readonly cfg: ReturnType<typeof sqliteStoreConfigSchema.parse>
  readonly leases: SqliteLeases
  readonly snapshots: SqliteSnapshots
  /** Reads on this connection: ':memory:' databases, `readers.workers: 0`, deletes and lease recovery. */
  private readonly reader: BlockReader
  private readonly writer: BlockWriter
  private readonly pool: ReaderPool | undefined
  private readonly writeTx: (events: readonly KeaEvent[]) => ReturnType<BlockWriter['write']>
  private readonly healthCount: HealthCount
  /**
   * What the last applyRetention() removed: events (its return value) and Kea snapshots (also
   * counted, since the store opened, in `snapshots.pruned`).
   */
  lastRetention: { events: number, snapshots: number } = { events: 0, snapshots: 0 }

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
    this.db = openDatabase({
      ...this.cfg,
      // A file of the row layout is refused before anything in it changes (the row layout, or
      // store migrate, still finds it as it was).
      accept: (db, version) => {
        if (version > 0 && db.prepare('SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)').pluck().get() === 1) throw new StoreLayoutError(this.path)
      }
    }).db
    this.leases = new SqliteLeases(this.db, this.cfg.leaseDerivation)
    if (subnets !== undefined) this.leases.subnets = subnets
    this.leases.domains = domains
    this.snapshots = new SqliteSnapshots(this.db)
    this.reader = new BlockReader(this.db)
    this.writer = new BlockWriter(this.db, this.reader, this.cfg.compression === undefined ? WRITE_CODEC : CODECS[this.cfg.compression])
    // What a key whose stored lease rows cannot be read is rebuilt from: its events, found by
    // the address's postings (a prefix's events carry its first address) and the server.
    this.leases.observationsOf = (k) => {
      const events: KeaEvent[] = []
      const q: EventQuery = { filters: { ip: [k.lease.replace(/\/\d+$/, '')], ...(k.scope === '' ? {} : { host: [...domains.hostsOf(k.scope)] }) } }
      this.reader.forEach(q, (_row, _i, e) => { if (e.event.action !== undefined) events.push(e) })
      return observeAllEither(events, domains).filter((o) => o.key === k.key)
    }
    this.leases.wipesStored = (limit) => {
      const wipes: LeaseWipe[] = []
      // A block that cannot be decoded fails its reads (KEATRAIL_ERR_STORE_READ), not the writer:
      // a wipe in it is not known (ARCHITECTURE.md, lease wipes). At most `limit`: after a flood
      // of wipe lines, reading them all made every start run out of memory.
      this.reader.forEachReadable({ filters: { action: [WIPE_ACTION] } }, (_row, _i, e) => {
        const w = observeWipe(e, domains)
        if (w !== undefined) wipes.push(w)
        return wipes.length < limit
      })
      return wipes
    }
    this.deriveAfterCrash()
    this.writeTx = this.db.transaction((events: readonly KeaEvent[]) => {
      const r = this.writer.write(events)
      // The replaced events' old observations go with them, in this transaction, and their keys
      // are re-derived without them.
      if (r.withdrawn.length > 0) this.leases.withdraw(r.withdrawn.map((e) => e.event.id), observeAllEither(r.withdrawn, this.domains))
      this.leases.cover(coverageSpans(events, this.domains))
      return r
    })
    const r = this.cfg.readers
    this.pool = this.path === ':memory:' || r.workers === 0
      ? undefined
      : new ReaderPool({ path: this.path, layout: 'blocks', workers: r.workers, queryTimeoutMs: r.queryTimeoutMs, maxQueued: r.maxQueued, cacheMiB: r.cacheMiB, nice: r.nice, busyTimeoutMs: this.cfg.busyTimeoutMs })
    const pool = this.pool
    if (pool !== undefined) {
      this.leases.remote = async (op, args) => await pool.run(op, args)
      this.snapshots.remote = async (op, args) => await pool.run(op, args)
    }
    this.healthCount = new HealthCount(async () => await this.count({}))
  }

  /**
   * Observations of blocks written after the lease watermark were pending in a process that
   * stopped before deriving them: derive them now (observations are stored idempotently, so a
   * block merged into since is simply observed again).
   */
  private deriveAfterCrash (): void {
    const through = this.leases.derivedThrough()
    const rows = this.db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE seq > ? ORDER BY seq').all(through) as BlockRow[]
    for (const row of rows) {
      const b = this.reader.block(row)
      const events: KeaEvent[] = []
      for (let i = 0; i < b.n; i++) events.push(b.event(i))
      this.leases.enqueue(observeAll(events, this.domains), row.seq, wipesOf(events, this.domains))
    }
    this.leases.flush()
  }

  // `_opts.signal` (Store.write) is not needed: a write never waits here, it runs to its end.
  async write (events: readonly KeaEvent[], _opts?: WriteOptions): Promise<WriteResult> {
    if (events.length === 0) return { written: 0, duplicates: 0, deadLettered: 0 }
    try {
      const { fresh, seq, written, duplicates, replaced } = this.leases.settled(() => this.writeTx(events))
      this.leases.enqueue(observeAll(fresh, this.domains), seq, wipesOf(fresh, this.domains))
      return { written, duplicates, deadLettered: 0, ...(replaced > 0 ? { replaced } : {}) }
    } catch (err) {
      throw withCause(new StoreWriteError('sqlite', `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim()), err)
    }
  }

  private async read<K extends keyof BlockReadOps> (op: K, ...args: Parameters<BlockReadOps[K]>): Promise<ReturnType<BlockReadOps[K]>> {
    if (this.pool !== undefined) return await this.pool.run(op, args as never) as ReturnType<BlockReadOps[K]>
    return this.db.transaction(() => runRead(this.reader, op, args as never) as ReturnType<BlockReadOps[K]>)()
  }

  async search (req: SearchRequest): Promise<SearchPage> { return await this.read('search', req) }
  async searchSerialized (req: SearchRequest): Promise<SerializedPage> { return await this.read('searchSerialized', req) }
  async get (id: string): Promise<KeaEvent | undefined> { return (await this.getMany([id]))[0] }
  async getMany (ids: readonly string[]): Promise<KeaEvent[]> { return await this.read('getMany', ids) }
  async evidence (ids: readonly string[]): Promise<EvidenceLine[]> { return await this.read('evidence', ids) }
  readonly chain = {
    head: async (): Promise<ChainHead | undefined> => chainHead(this.db),
    // On the store's connection, in one read transaction: a consistent picture of the file.
    verify: async (opts?: ChainVerifyOptions): Promise<ChainReport> => this.db.transaction(() => verifyChain(this.db, opts))(),
    proofs: async (ids: readonly string[]): Promise<Array<ChainProof | undefined>> => this.db.transaction(() => chainProofs(this.db, (id) => this.reader.locate(id), ids))()
  }

  async count (q: EventQuery = {}): Promise<number> { return await this.read('count', q) }
  async histogram (q: EventQuery, intervalMs: number): Promise<Bucket[]> { return await this.read('histogram', q, intervalMs) }
  async top (field: FilterField, q: EventQuery, size: number): Promise<TermCount[]> { return await this.read('top', field, q, size) }

  async deleteEvents (q: EventQuery): Promise<DeleteResult> {
    this.leases.flush()
    const result: DeleteResult = { deleted: 0, rederived: 0, scopes: [] }
    const deleteTx = this.db.transaction(() => {
      const matches = new Map<number, { row: BlockRow, at: Set<number> }>()
      this.reader.forEach(q, (row, i) => {
        let m = matches.get(row.id)
        if (m === undefined) { m = { row, at: new Set() }; matches.set(row.id, m) }
        m.at.add(i)
      })
      if (matches.size === 0) return
      const seq = this.writer.nextSeq()
      const removed: KeaEvent[] = []
      for (const m of matches.values()) removed.push(...this.writer.remove(m.row, (i) => m.at.has(i), seq))
      result.deleted = removed.length
      // Their observations name the keys to re-derive.
      const shaping = removed.filter((e) => e.event.action !== undefined)
      result.rederived = this.leases.withdraw(shaping.map((e) => e.event.id), observeAllEither(shaping, this.domains))
      for (const [scope, span] of coverageSpans(removed, this.domains)) {
        // Lines that did not parse say nothing about leases (see coverageSpans).
        const left = this.spanOf(scope)
        const coverage = this.leases.shrinkCoverage(scope, left)
        const entry: DeleteResult['scopes'][number] = { scope, ...(coverage === undefined ? {} : { coverage }) }
        // A hole inside what is still covered, with no events of the scope left in it: answers
        // there must say "not covered", not "nobody held it".
        const hole = { from: span.first, to: span.last }
        if (coverage !== undefined && hole.from > coverage.from && hole.to < coverage.to && this.spanOf(scope, hole) === undefined) {
          this.db.prepare('INSERT INTO gaps (scope, from_ts, to_ts, reason) VALUES (?, ?, ?, ?)').run(scope, hole.from, hole.to, 'events deleted by keatrail store delete')
          entry.gap = hole
        }
        result.scopes.push(entry)
      }
    })
    this.leases.settled(deleteTx)
    return result
  }

  /** The time span (ms) of the parsed events of `scope` left, within `within` when given. */
  private spanOf (scope: string, within?: { from: number, to: number }): { first: number, last: number } | undefined {
    let first = Infinity
    let last = -Infinity
    // A named scope's blocks are found by their host postings (a lease domain's: its servers');
    // events without a host by a scan.
    const q: EventQuery = { ...(within === undefined ? {} : { from: within.from, to: within.to + 1 }), ...(scope === '' ? {} : { filters: { host: [...this.domains.hostsOf(scope)] } }) }
    this.reader.forEach(q, (_row, _i, e) => {
      if (e.kea.parse.status === 'unmatched' || this.domains.scopeOf(e.host?.name ?? '') !== scope) return
      const t = isoMillis(e['@timestamp'])
      if (t < first) first = t
      if (t > last) last = t
    }, true)
    return first === Infinity ? undefined : { first, last }
  }

  async health (): Promise<{ ok: boolean, detail: string }> {
    return storeHealth(this.db, this.pool, this.healthCount, this.path)
  }

  /**
   * Drops whole blocks whose newest event is older than maxAgeDays, then the oldest blocks while
   * the file is over maxSizeMiB, and hands freed pages back. Returns how many events went
   * (`lastRetention` also says how many Kea snapshots).
   *
   * Kea snapshots obey the same bounds, and give way first: older than
   * maxAgeDays they go like events do. Over maxSizeMiB, snapshots older than a day are first
   * thinned to one per server, service and hour, then the oldest go, all but the newest of each
   * server and service, and only then events. Events are the record (lease history, the
   * tamper-evidence chain, what an investigation reads); snapshots are a sampled time series of
   * which an hourly sample keeps the trend at 1/120 of the bytes (30 s polls), and one of 1,000
   * subnets is ~82 KB: left alone they outgrew the events and size retention deleted every event
   * to keep them. The newest of each server and service stays for `latest()` and the depletion
   * alerts primed from it after a restart.
   */
  applyRetention (now = Date.now()): number {
    this.leases.flush()
    let deleted = 0
    let snapshots = 0
    const { maxAgeDays, maxSizeMiB } = this.cfg.retention
    const seq = this.writer.nextSeq()
    // A transaction per block: each is ~5-20 ms (its documents are parsed for the postings to
    // remove), and the WAL holds one block's pages at a time.
    const removeTx = this.db.transaction((r: BlockRow, drop: (i: number) => boolean) => this.writer.remove(r, drop, seq).length)
    const drop = (rows: BlockRow[]): void => {
      for (const r of rows) {
        try {
          deleted += removeTx(r, () => true)
        } catch {
          // A block that cannot be decoded (corrupted on disk) still ages out: dropped whole,
          // its lease observations left to the lease history's own pruning below.
          this.db.transaction(() => this.writer.dropBlock(r.id))()
          deleted += r.n
        }
      }
    }
    const oldest = this.db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks ORDER BY max_ts LIMIT ?')
    if (maxAgeDays !== undefined) {
      const cutoff = (now - maxAgeDays * 86_400_000) * 1000
      drop(this.db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE max_ts < ?').all(cutoff) as BlockRow[])
      // Blocks across the cutoff lose their expired events too: a batch imported from an old
      // file can hold days, and an age limit is often a legal one.
      const across = this.db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq, pv FROM blocks WHERE min_ts < ? AND max_ts >= ?').all(cutoff, cutoff) as BlockRow[]
      for (const r of across) {
        try {
          const ts = this.reader.times(r)
          deleted += removeTx(r, (i) => (ts[i] as number) < cutoff)
        } catch {
          // Undecodable (corrupted on disk): its events cannot be told apart by age; dropped
          // whole, as the blocks wholly past the cutoff are, rather than failing every run.
          this.db.transaction(() => this.writer.dropBlock(r.id))()
          deleted += r.n
        }
      }
      this.leases.prune(Math.floor(cutoff / 1000))
      snapshots += this.snapshots.deleteBefore(Math.floor(cutoff / 1000))
    }
    if (maxSizeMiB !== undefined) {
      const limit = maxSizeMiB * 1024 * 1024
      snapshots += this.shrinkSnapshots(now, limit, SNAPSHOT_SHARE * limit)
      let used = this.usedBytes()
      let noEvents = false
      for (let round = 0; round < 1000 && used > limit; round++) {
        const total = this.db.prepare('SELECT count(*) FROM blocks').pluck().get() as number
        if (total === 0) { noEvents = true; break }
        drop(oldest.all(Math.max(1, Math.ceil(total * 0.05))) as BlockRow[])
        // The leaves kept for removed records take room until their links are wholly gone: pruned
        // each round, or the file would not shrink and the loop would delete the newest events too.
        this.db.transaction(() => this.writer.pruneChain())()
        const first = this.db.prepare('SELECT min(min_ts) FROM blocks').pluck().get() as number | null
        if (first !== null) this.leases.prune(Math.floor(first / 1000))
        checkpointNow(this.db, this.cfg.busyTimeoutMs)
        this.db.pragma('incremental_vacuum')
        // A round that freed nothing (the leaves of one huge write's removed records outweigh
        // them) would go on to the newest events: stop, and try again at the next interval.
        const now = this.usedBytes()
        if (now >= used) break
        used = now
      }
      // No event left to delete, and still over: the snapshots go down to the newest of each
      // (not when the loop stopped with events left: it tries again at the next interval).
      if (noEvents && used > limit) snapshots += this.shrinkSnapshots(now, limit, 0)
    }
    if (deleted > 0) {
      // Links none of whose records are left go, from the oldest on (the chain verifies from the oldest kept).
      this.db.transaction(() => this.writer.pruneChain())()
    }
    if (deleted > 0 || snapshots > 0) this.db.pragma('incremental_vacuum')
    this.lastRetention = { events: deleted, snapshots }
    return deleted
  }

  /**
   * Size retention's snapshot steps (see applyRetention): thins the snapshots older than
   * SNAPSHOT_FULL_RESOLUTION_MS, then evicts the oldest, all but the newest of each server and
   * service, while the file is over `limit` bytes and their documents over `budget`. Returns how
   * many went.
   */
  private shrinkSnapshots (now: number, limit: number, budget: number): number {
    if (this.usedBytes() <= limit) return 0
    // Whole hours: a bucket is thinned once, not a part of it each run.
    const before = Math.floor((now - SNAPSHOT_FULL_RESOLUTION_MS) / SNAPSHOT_THIN_MS) * SNAPSHOT_THIN_MS
    let removed = this.snapshots.thin(before, SNAPSHOT_THIN_MS)
    // Freed pages count at once (used bytes are pages minus free pages): no checkpoint needed to
    // measure. Steps of 1 % of the evictable snapshots: at most ~100 rounds, and no more than
    // 1 % of the history goes beyond what the limit needs (a deleted row frees a page only once
    // its page is empty, so the bytes cannot be computed ahead).
    const step = Math.max(1, Math.ceil(this.snapshots.evictable() / 100))
    let bytes = this.snapshots.docBytes()
    while (this.usedBytes() > limit && bytes > budget) {
      const gone = this.snapshots.deleteOldest(step)
      removed += gone.removed
      bytes -= gone.bytes
      if (gone.removed === 0) break
    }
    if (removed > 0) {
      checkpointNow(this.db, this.cfg.busyTimeoutMs)
      this.db.pragma('incremental_vacuum')
    }
    return removed
  }

  /** Bytes of the database in use (pages minus free pages). */
  usedBytes (): number {
    return usedBytes(this.db)
  }

  async close (): Promise<void> {
    await closeStore(this.db, this.pool, this.leases)
  }
}
