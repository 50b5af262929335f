import type Database from 'better-sqlite3'
import { deriveIntervals, intervalId, resumable } from '../../leases/derive.js'
import { compareObservations, sequenceOf } from '../../leases/observe.js'
import { NO_DOMAINS, type LeaseDomains } from '../../leases/domains.js'
import { firstWipeWithin, MAX_WIPES, typesOf, WIPE_ACTION, wipeObservation, WipeRegistry, type LeaseWipe, type SubnetMap } from '../../leases/wipes.js'
import { type CollectionGap, type HistoryQuery, type LeaseInterval, type LeaseKey, type LeaseObservation, type LeaseStore } from '../../leases/types.js'
import { LEASE_OBS_VIEW } from './migrations.js'
import { identityOf, intervalDoc, intervalOf, ObsWriter, readIds, readObs, resumeObs, sameIdentity, type Identity } from './lease-codec.js'
import { identBlob } from './ident-blob.js'
import { LeaseHistoryDamagedError, LOG_CODES } from '../../errors.js'
import { decodeStored, keyOf, LeaseReader, LOG_COLS, type LeaseReadOp, type LeaseReadOps, type LogRow, type Row } from './lease-reader.js'

/**
 * Observations kept in an interval's own row; older ones move to lease_log_obs in sealed chunks
 * of this many. A client renewing one address for months is one interval: without the cap its
 * row (rewritten by every flush that extends it) would grow by ~9 bytes per renewal for ever.
 */
const ROW_OBS = 64
/**
 * Keys whose last interval is kept in memory, so that observations following it (logs read in
 * order) are folded without reading SQL. ~1.5 KB each with DHCPv4's ~10 observations per
 * interval: 20,000 keys ≈ 30 MB. A key not held costs one read when it is next observed.
 */
const CACHE_KEYS = 20_000

/** A stored (or about to be stored) log interval: its row, its fields, the observations in the row. */
interface IvRow {
  /** 0: not inserted yet. */
  rowid: number
  iv: LeaseInterval
  /** The indexed columns as stored; undefined: new row. */
  stored: Identity | undefined
  main: ObsWriter
  /** Event ids of the observations in `main`, in order: the evidence names them by index. */
  ids: string[]
  /** Observations of the interval already moved to lease_log_obs. */
  sealed: number
  /** Chunks sealed since the last write: [index of their first observation, bytes]. */
  chunks: Array<[number, Buffer]>
  /** The stored chunks are stale (the row was re-derived): delete them before writing. */
  resetChunks: boolean
  /** The id is not the hash of key and first evidence (converted legacy rows): stored in the doc. */
  keepId: boolean
  dirty: boolean
}

/** A stored row and the observations in it. */
interface Loaded { row: IvRow, obs: LeaseObservation[] }

/** A key as this process last left it: its last interval and its last observation's position. */
interface Tail {
  kid: number
  k: LeaseKey
  last: IvRow | undefined
  ts: number
  seq: string
  /** The last apply that used it. */
  used: number
  /** Its observations in the apply running. */
  batch: LeaseObservation[]
  /** Its stored rows could not be read and were dropped: rebuild it from the events (repair). */
  rebuild?: true
}

function after (o: LeaseObservation, ts: number, seq: string): boolean {
  return o.ts > ts || (o.ts === ts && o.seq > seq)
}

/** Orders a key's intervals as derivation made them: by their first observation's position. */
function byPosition (a: IvRow, b: IvRow): number {
  const pa = a.iv.start ?? a.iv.end ?? 0
  const pb = b.iv.start ?? b.iv.end ?? 0
  if (pa !== pb) return pa - pb
  const sa = sequenceOf(a.iv.evidence[0] ?? '')
  const sb = sequenceOf(b.iv.evidence[0] ?? '')
  return sa < sb ? -1 : sa > sb ? 1 : 0
}

/** When pending observations are derived (the store's `leaseDerivation` config). */
export interface DerivationPolicy { maxPending: number, maxDelayMs: number }

/**
 * Lease history in the SQLite store. The events are the record: a write commits them, and their
 * observations wait here (`enqueue`) to be derived in one transaction of their own (`flush`),
 * once `maxPending` have gathered, `maxDelayMs` after the first, before any lease read of this
 * process, and at close. `meta.leases_through` is the greatest event rowid whose observations
 * are derived; on open the store re-observes the events after it (a crash loses no derivation).
 *
 * Storage (schema 10): one lease_log row per derived interval, holding its observations as
 * delta-encoded bytes (lease-codec.ts); a key's intervals are found by its lease_keys row.
 * A batch is folded per key in memory: a key's new observations that all follow its last one
 * resume or follow its last interval (kept in memory for recently active keys, else read once),
 * and each interval they changed is written once; a renewal is an UPDATE of `end` and the
 * row's bytes, which no index holds. Observations out of order, replayed or withdrawn re-derive
 * the key from the last interval that started before the earliest of them, with the
 * observations the rows from there on hold. 20 CPU-µs and ~540 bytes per DHCPv4 event became
 * about a tenth (bench/lease-derive).
 */
export class SqliteLeases implements LeaseStore {
  private pending: LeaseObservation[] = []
  /** Wipes of the events whose observations are pending: applied with them. */
  private pendingWipes: LeaseWipe[] = []
  private pendingThrough = 0
  /** The wipes in the stored events (src/leases/wipes.ts), read at the first derivation. */
  private wipes: WipeRegistry | undefined
  /** Where the wipes already stored are read from (the store's events), at most `limit` of them in storage order; none without it. */
  wipesStored: ((limit: number) => LeaseWipe[]) | undefined
  private subnetMap: SubnetMap | undefined
  /** The configured subnets (`leases.subnets`): which leases of unknown subnet a wipe ends. */
  set subnets (map: SubnetMap) { this.subnetMap = map; this.wipes = undefined }
  private openAtWipe: Database.Statement | undefined
  private startedAmongWipes: Database.Statement | undefined
  /** The lease domains (`leases.domains`): what a server's name in a question means. */
  domains: LeaseDomains = NO_DOMAINS
  /** Wipes stored in a file derived by a keatrail that ignored them: applied once, by the next apply. */
  private unappliedWipes: LeaseWipe[] = []
  /** meta 'lease_wipes' is set (in this process): the file's wipes have been applied. */
  private wipesMarked = false
  /** The lease domains the file's history was last derived with (LeaseDomains.signature), undefined when never recorded. */
  domainsRecorded (): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = \'lease_domains\'').get() as { value: unknown } | undefined
    return row === undefined ? undefined : String(row.value)
  }

  /** Records the lease domains this process derives with (see domainsRecorded). */
  recordDomains (signature: string): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (\'lease_domains\', ?)').run(signature)
  }

  /** The watermark as last read or written; -1: not known yet. */
  private through = -1
  /** Statements of the answers' reads by their text (prepared). */
  private readonly statements = new Map<string, Database.Statement>()
  private timer: NodeJS.Timeout | undefined
  private readonly cache = new Map<string, Tail>()
  /** Counts applies: a cached key remembers the last one that used it. */
  private tick = 0
  /** Keys read into the cache during this apply. */
  private newcomers: string[] = []
  /**
   * The `leases_gen` this process wrote last. Another value in meta means another process
   * (`keatrail import` beside `keatrail run`) or a rolled-back transaction changed lease
   * history since: the cache is dropped. Random, so that neither can come back to our value.
   */
  private gen = -1
  private readonly getThrough: Database.Statement
  private readonly setThrough: Database.Statement
  private readonly getGen: Database.Statement
  private readonly setGen: Database.Statement
  private readonly findKey: Database.Statement
  private readonly insKey: Database.Statement
  private readonly lastRows: Database.Statement
  private readonly anchorPos: Database.Statement
  private readonly prevPos: Database.Statement
  private readonly rowsFrom: Database.Statement
  private readonly rowsAll: Database.Statement
  private readonly chunksOf: Database.Statement
  private readonly insLog: Database.Statement
  private readonly updLog: Database.Statement
  private readonly updLogFull: Database.Statement
  private readonly delLog: Database.Statement
  private readonly insChunk: Database.Statement
  private readonly delChunks: Database.Statement
  private readonly insInterval: Database.Statement
  private readonly upCoverage: Database.Statement
  private readonly delKeyChunks: Database.Statement
  private readonly delKeyLog: Database.Statement
  private readonly keyRow: Database.Statement
  /**
   * Every observation of a key in the stored events (the store sets it): what a key whose
   * stored rows cannot be read is rebuilt from. Without it such a key starts over from the
   * observations being derived.
   */
  observationsOf: ((k: LeaseKey) => LeaseObservation[]) | undefined
  private repairListener: ((key: string, err: Error, fromEvents: boolean) => void) | undefined
  /** Repairs made before anyone listened (the store's recovery on open): told to the first listener. */
  private unreported: Array<{ key: string, err: Error }> = []
  private readonly damagedKeys = new Set<string>()

  /**
   * Called for each key rebuilt (the service logs it; `repaired` counts them); `fromEvents`: from
   * the stored events, else (no observationsOf) from the observations being derived only.
   */
  set onRepair (fn: (key: string, err: Error, fromEvents: boolean) => void) {
    this.repairListener = fn
    for (const r of this.unreported.splice(0)) fn(r.key, r.err, this.observationsOf !== undefined)
  }
  /** Keys whose stored rows could not be read, rebuilt from the events since this process started. */
  repaired = 0
  /**
   * Keys reset in the transaction running now: counted and reported when it commits (settle).
   * A rolled-back rebuild is done again by the retry, and was counted and logged twice.
   */
  private resetsInTx: Array<{ key: string, err: Error }> = []
  /** Wipes ignored in the transaction running now (ignoreWipes): counted and reported when it commits. */
  private ignoredInTx: Array<{ scope: string, from: number, to: number, n: number }> = []
  /** Wipes not applied since this process started: more than MAX_WIPES (each batch of them logged by the service). */
  wipesIgnored = 0
  /** The most wipes kept (MAX_WIPES; tests set fewer). */
  wipeLimit = MAX_WIPES
  private wipesIgnoredListener: ((scope: string, n: number, from: number, to: number) => void) | undefined
  /** Called for the wipes of one server a batch could not apply (MAX_WIPES), once they are stored. */
  set onWipesIgnored (fn: (scope: string, n: number, from: number, to: number) => void) { this.wipesIgnoredListener = fn }

  /**
   * The transaction that held lease changes ended (`committed` or rolled back): the keys it
   * rebuilt are counted and reported, or forgotten. Nothing while a transaction is still open
   * (an inner one: the outer one decides). The store's writes and deletes, which run lease
   * changes in transactions of their own, run them through `settled`.
   */
  private settle (committed: boolean): void {
    if (this.db.inTransaction) return
    const done = this.resetsInTx
    this.resetsInTx = []
    const ignored = this.ignoredInTx
    this.ignoredInTx = []
    if (committed) {
      for (const g of ignored) {
        this.wipesIgnored += g.n
        try { this.wipesIgnoredListener?.(g.scope, g.n, g.from, g.to) } catch { /* the count stands */ }
      }
    }
    if (!committed) {
      // What the registry learnt may not be stored, nor the mark that the file's wipes are applied.
      this.wipes = undefined
      this.unappliedWipes = []
      this.wipesMarked = false
      return
    }
    this.repaired += done.length
    for (const { key, err } of done) {
      // Bounded: a process nobody listens to (an import) keeps the first 100.
      if (this.repairListener === undefined) {
        if (this.unreported.length < 100) this.unreported.push({ key, err })
        continue
      }
      // Told after the commit: a listener that throws must not fail a write that is stored.
      try { this.repairListener(key, err, this.observationsOf !== undefined) } catch { /* the count stands */ }
    }
  }

  /**
   * Runs `tx` (a transaction holding lease changes) and settles it by how it ended. Top-level
   * transactions only: the resets of a savepoint rolled back inside one that commits would count.
   */
  settled<T> (tx: () => T): T {
    let r: T
    try {
      r = tx()
    } catch (err) {
      this.settle(false)
      throw err
    }
    this.settle(true)
    return r
  }

  /** `fn` in a transaction of its own, settled. */
  private inTransaction<T> (fn: () => T): T {
    return this.settled(this.db.transaction(fn))
  }

  /** The reads on this connection: without reader workers, and those that met damaged rows. */
  private readonly reads: LeaseReader
  /**
   * Where reads run when the store has reader workers (set by the store): off this connection's
   * thread, the collector's.
   */
  remote: (<K extends LeaseReadOp>(op: K, args: Parameters<LeaseReadOps[K]>) => Promise<ReturnType<LeaseReadOps[K]>>) | undefined

  constructor (private readonly db: Database.Database, private readonly policy: DerivationPolicy = { maxPending: 1, maxDelayMs: 0 }) {
    this.reads = new LeaseReader(db, this.noteDamaged)
    this.getThrough = db.prepare('SELECT value FROM meta WHERE key = \'leases_through\'')
    this.setThrough = db.prepare('UPDATE meta SET value = ? WHERE key = \'leases_through\'')
    this.getGen = db.prepare('SELECT value FROM meta WHERE key = \'leases_gen\'')
    this.setGen = db.prepare('UPDATE meta SET value = ? WHERE key = \'leases_gen\'')
    this.findKey = db.prepare('SELECT kid FROM lease_keys WHERE key = ?')
    this.insKey = db.prepare('INSERT INTO lease_keys (key, scope, type, lease, lo, hi) VALUES (?, ?, ?, ?, ?, ?)')
    const from = `FROM lease_log l JOIN lease_keys k ON k.kid = l.kid`
    this.lastRows = db.prepare(`SELECT ${LOG_COLS} ${from} WHERE l.kid = ? AND l.pos = (SELECT max(pos) FROM lease_log WHERE kid = ?)`)
    this.anchorPos = db.prepare('SELECT pos FROM lease_log WHERE kid = ? AND pos < ? AND start IS NOT NULL ORDER BY pos DESC LIMIT 1')
    this.prevPos = db.prepare('SELECT pos FROM lease_log WHERE kid = ? AND pos < ? ORDER BY pos DESC LIMIT 1')
    this.rowsFrom = db.prepare(`SELECT ${LOG_COLS} ${from} WHERE l.kid = ? AND l.pos >= ?`)
    this.rowsAll = db.prepare(`SELECT ${LOG_COLS} ${from} WHERE l.kid = ?`)
    this.chunksOf = db.prepare('SELECT obs FROM lease_log_obs WHERE iv = ? ORDER BY first')
    this.insLog = db.prepare(`INSERT INTO lease_log (kid, pos, start, "end", n, hwaddr, client_id, duid, duid_ll, hostname, doc, obs)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    // end, n, doc and obs are in no index: extending an interval rewrites its row only.
    this.updLog = db.prepare('UPDATE lease_log SET "end" = ?, n = ?, doc = ?, obs = ? WHERE rowid = ?')
    this.updLogFull = db.prepare(`UPDATE lease_log SET pos = ?, start = ?, "end" = ?, n = ?, hwaddr = ?, client_id = ?, duid = ?, duid_ll = ?, hostname = ?,
      doc = ?, obs = ? WHERE rowid = ?`)
    this.delLog = db.prepare('DELETE FROM lease_log WHERE rowid = ?')
    this.insChunk = db.prepare('INSERT OR REPLACE INTO lease_log_obs (iv, first, obs) VALUES (?, ?, ?)')
    this.delChunks = db.prepare('DELETE FROM lease_log_obs WHERE iv = ?')
    this.delKeyChunks = db.prepare('DELETE FROM lease_log_obs WHERE iv IN (SELECT rowid FROM lease_log WHERE kid = ?)')
    this.delKeyLog = db.prepare('DELETE FROM lease_log WHERE kid = ?')
    this.keyRow = db.prepare('SELECT key, scope, type, lease, lo, hi FROM lease_keys WHERE key = ?')
    this.insInterval = db.prepare(`INSERT OR REPLACE INTO lease_intervals
      (id, key, origin, scope, type, lo, hi, start, start_seq, pos_ts, pos_seq, end, hwaddr, client_id, duid, duid_ll, hostname, doc)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.upCoverage = db.prepare(`INSERT INTO coverage (scope, first, last) VALUES (?, ?, ?)
      ON CONFLICT (scope) DO UPDATE SET first = min(first, excluded.first), last = max(last, excluded.last)`)
    if (db.prepare('SELECT 1 FROM sqlite_master WHERE type = \'table\' AND name = \'lease_obs\'').get() !== undefined) {
      db.transaction(() => { this.convertLegacy() })()
    }
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
  enqueue (obs: readonly LeaseObservation[], throughRowid: number, wipes: readonly LeaseWipe[] = []): void {
    for (const o of obs) this.pending.push(o)
    for (const w of wipes) this.pendingWipes.push(w)
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
    // The watermark only grows: one read past it already (ours) settles most calls without a query.
    if (this.pending.length === 0 && this.pendingWipes.length === 0 && (through <= this.through || through <= this.derivedThrough())) return
    this.inTransaction(() => {
      this.apply(this.pending, this.pendingWipes)
      if (through > this.derivedThrough()) { this.setThrough.run(through); this.through = through }
    })
    this.pending = []
    this.pendingWipes = []
  }

  /** The wipes known: those in the stored events (read once), and those applied since. */
  private registry (): WipeRegistry {
    if (this.wipes === undefined) {
      const reg = new WipeRegistry(this.subnetMap, this.wipeLimit)
      // The first wipeLimit in storage order: those past it were ignored when they came (their gaps are stored).
      const stored = this.wipesStored?.(this.wipeLimit) ?? []
      reg.addAll(stored)
      this.wipes = reg
      // A file whose lease history was derived before wipes ended leases (no 'lease_wipes' in
      // meta): its stored wipes reach their keys once, in the next apply.
      this.wipesMarked = this.db.prepare('SELECT 1 FROM meta WHERE key = \'lease_wipes\'').get() !== undefined
      if (!this.wipesMarked) this.unappliedWipes = stored
    }
    return this.wipes
  }

  /**
   * A batch's wipes of one server and family (in order) as observations of every stored key of
   * theirs with an interval open at one of them: each such key meets the first wipe inside its
   * interval, and its derivation merges the others that can change it (WipeRegistry.merge).
   * Keys not stored yet meet them in their derivation. One probe per batch, not per wipe: a
   * flood of wipe lines cost one probe of every key each (50,000 keys, 250 wipes in a batch: out
   * of memory). Not the group's first wipe for every key: a key whose intervals lie between two
   * wipes far apart (forged times) was re-derived for nothing.
   */
  private wipeObservations (group: readonly LeaseWipe[]): LeaseObservation[] {
    // A key's intervals do not overlap: only its last one starting at or before the first wipe
    // can hold it then, found by (kid, pos); of two at one position (one without a start ending
    // where the next begins) the one ending last. Not a join over every interval of the server:
    // that scan grew with the history (15 % of bench/e2e's CPU, a wipe every ~600 lines).
    this.openAtWipe ??= this.db.prepare(`SELECT k.key, k.scope, k.type, k.lease, k.lo, k.hi FROM lease_keys k
      WHERE k.scope = ? AND k.type IN (?, ?)
        AND (SELECT l."end" IS NULL OR l."end" >= ? FROM lease_log l WHERE l.kid = k.kid AND l.pos <= ?
          ORDER BY l.pos DESC, l."end" IS NULL DESC, l."end" DESC LIMIT 1)`)
    // The intervals starting after the first wipe and up to the last (stored before the wipes came).
    this.startedAmongWipes ??= this.db.prepare(`SELECT k.key, k.scope, k.type, k.lease, k.lo, k.hi, l.start, l."end" AS "end" FROM lease_keys k
      JOIN lease_log l ON l.kid = k.kid WHERE k.scope = ? AND k.type IN (?, ?) AND l.pos > ? AND l.pos <= ?`)
    const w = group[0] as LeaseWipe
    const last = group[group.length - 1] as LeaseWipe
    const [a, b] = typesOf(w.family)
    const reg = this.registry()
    const first = new Map<string, { k: LeaseKey, w: LeaseWipe }>()
    for (const k of this.openAtWipe.all(w.scope, a, b ?? a, w.ts, w.ts) as LeaseKey[]) first.set(k.key, { k, w })
    if (last.ts > w.ts) {
      for (const r of this.startedAmongWipes.iterate(w.scope, a, b ?? a, w.ts, last.ts) as IterableIterator<LeaseKey & { start: number | null, end: number | null }>) {
        const at = firstWipeWithin(group, r.start, r.end)
        const had = first.get(r.key)
        if (at !== undefined && (had === undefined || compareObservations(at, had.w) < 0)) first.set(r.key, { k: { key: r.key, scope: r.scope, type: r.type, lease: r.lease, lo: r.lo, hi: r.hi }, w: at })
      }
    }
    const out: LeaseObservation[] = []
    for (const { k, w: at } of first.values()) out.push(wipeObservation(at, k, reg.inSubnet(k, at)))
    return out
  }

  /**
   * Wipes past the registry's bound (MAX_WIPES) are not applied: the time they cover on their
   * server is recorded as a collection gap (answers there say so), and they are counted and
   * reported once the transaction commits.
   */
  private ignoreWipes (ignored: ReadonlyMap<string, { from: number, to: number, n: number }>): void {
    for (const [scope, g] of ignored) {
      this.db.prepare('INSERT INTO gaps (scope, from_ts, to_ts, reason) VALUES (?, ?, ?, ?)')
        .run(scope, g.from, g.to, `${g.n} lease wipe(s) not applied: more than ${this.wipeLimit} wipes`)
      this.ignoredInTx.push({ scope, ...g })
    }
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

  /** Called at the start of every change to log intervals, inside its transaction (see `gen`). */
  private sync (): void {
    const g = (this.getGen.get() as { value: number }).value
    // Another process derived since (keatrail import beside run): its keys and wipes are read again.
    if (g !== this.gen) { this.cache.clear(); this.wipes = undefined }
    this.gen = Math.floor(Math.random() * 2 ** 48)
    this.setGen.run(this.gen)
  }

  /**
   * Stores new observations and re-derives the affected keys. When a key's new observations
   * all follow the ones it had (the usual case: logs read in order), its last interval is
   * resumed with them; otherwise the key is re-derived from the last interval that started
   * before the earliest change (everything earlier cannot depend on it). Replays are dropped by
   * event id.
   */
  apply (obs: readonly LeaseObservation[], wipes: readonly LeaseWipe[] = []): void {
    if (obs.length === 0 && wipes.length === 0) return
    this.sync()
    const reg = this.registry()
    if (!this.wipesMarked) {
      wipes = [...this.unappliedWipes, ...wipes]
      this.unappliedWipes = []
      this.db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (\'lease_wipes\', 1)').run()
      this.wipesMarked = true
    }
    if (wipes.length > 0) {
      const more: LeaseObservation[] = []
      // Also a wipe seen before (a batch derived again after a crash): its keys' stored rows may
      // predate it; where they have it already, it is dropped as a replay.
      // By id: a file's stored wipes applied once (unappliedWipes) may be this batch's too.
      const { groups, ignored } = reg.admit(wipes)
      // One at a time, not spread: a wipe may reach 100,000 keys and more.
      for (const g of groups) for (const o of this.wipeObservations(g)) more.push(o)
      if (ignored.size > 0) this.ignoreWipes(ignored)
      if (more.length > 0) obs = obs.concat(more)
    }
    this.tick++
    // Grouped on the keys' cached state itself: one Map lookup per observation, and no Map of
    // 10,000 keys built per flush (0.7 µs per event on bench/lease-derive's fill load).
    const touched: Tail[] = []
    try {
      for (const o of obs) {
        const t = this.tailOrReset(o.key, o)
        if (t.batch.length === 0) touched.push(t)
        t.batch.push(o)
      }
      for (const t of touched) {
        const all = t.batch
        if (all.length > 1) all.sort(compareObservations)
        // The same event twice in one batch sorts next to itself.
        let list = all
        for (let i = 1; i < all.length; i++) {
          if ((all[i] as LeaseObservation).event_id === (all[i - 1] as LeaseObservation).event_id) {
            list = all.filter((o, j) => j === 0 || o.event_id !== (all[j - 1] as LeaseObservation).event_id)
            break
          }
        }
        t.batch = []
        const first = list[0] as LeaseObservation
        try {
          if (t.rebuild === true) this.rebuild(t, list)
          else if (t.last === undefined || after(first, t.ts, t.seq)) this.extend(t, list)
          else {
            this.rederive(t, first.ts, list, new Set())
            this.cache.delete(t.k.key)
          }
        } catch (err) {
          if (!(err instanceof LeaseHistoryDamagedError)) throw err
          this.rebuild(this.reset(t.k.key, first, err), list)
        }
      }
    } finally {
      for (const t of touched) if (t.batch.length > 0) t.batch = []
      this.evict()
    }
  }

  /**
   * Brings the cache back to CACHE_KEYS after an apply (keys with observations waiting in it
   * had to stay): first keys no apply used lately, then this apply's newcomers. Not least
   * recently used: clients renew in cycles, and with more active keys than places LRU evicts
   * each key just before it comes back (30,000 keys, 20,000 places: every key read again,
   * 21 µs per event; keeping the ones held, two in three are hits).
   */
  private evict (): void {
    const newcomers = this.newcomers
    this.newcomers = []
    if (this.cache.size <= CACHE_KEYS) return
    for (const [k, t] of this.cache) {
      if (this.cache.size <= CACHE_KEYS) return
      if (t.used < this.tick - 8) this.cache.delete(k)
    }
    while (this.cache.size > CACHE_KEYS && newcomers.length > 0) this.cache.delete(newcomers.pop() as string)
  }

  /** A decode of `key`'s stored rows; failing, the key is noted for `healing` (decodeStored). */
  private damaged<T> (key: string, decode: () => T): T {
    return decodeStored(key, decode, this.noteDamaged)
  }

  private readonly noteDamaged = (key: string): void => { this.damagedKeys.add(key) }

  /**
   * A read that met a key's damaged rows rebuilds those keys from the stored events, in a
   * transaction of its own, and runs once more; the answer fails only if that fails. Without
   * the events to rebuild from (the row layout) it fails: erasing the key's history is no repair.
   */
  private healing<T> (read: () => T): T {
    try {
      return read()
    } catch (err) {
      const keys = [...this.damagedKeys]
      this.damagedKeys.clear()
      if (!(err instanceof LeaseHistoryDamagedError) || keys.length === 0 || this.observationsOf === undefined) throw err
      try {
        this.inTransaction(() => {
          this.sync()
          for (const key of keys) {
            const k = this.keyRow.get(key) as LeaseKey | undefined
            if (k !== undefined) this.rebuild(this.reset(key, k, err), [])
          }
        })
      } catch {
        throw err
      }
      return read()
    }
  }

  /** tail(), or, its stored rows not readable, the key emptied for a rebuild (see reset). */
  private tailOrReset (key: string, sample: LeaseKey): Tail {
    try {
      return this.tail(key, sample)
    } catch (err) {
      if (!(err instanceof LeaseHistoryDamagedError)) throw err
      return this.reset(key, sample, err)
    }
  }

  /**
   * A key whose stored rows cannot be read (bytes damaged on disk, or written by a bug): its
   * rows go, in this transaction, and it is rebuilt from every observation of it in the stored
   * events (`rebuild`), so that one bad row never stops derivation — before, every flush threw,
   * the pipeline retried its batch for ever and every lease answer failed.
   */
  private reset (key: string, sample: LeaseKey, err: Error): Tail {
    const found = this.findKey.get(key) as { kid: number } | undefined
    if (found !== undefined) {
      this.delKeyChunks.run(found.kid)
      this.delKeyLog.run(found.kid)
    }
    this.cache.delete(key)
    this.damagedKeys.delete(key)
    const t = this.tail(key, sample)
    t.rebuild = true
    this.resetsInTx.push({ key, err })
    return t
  }

  /** Derives an emptied key (reset) from the stored events' observations and `list`. */
  private rebuild (t: Tail, list: readonly LeaseObservation[]): void {
    const seen = new Set<string>()
    const all: LeaseObservation[] = []
    for (const o of [...(this.observationsOf?.(t.k) ?? []), ...list]) {
      if (o.key !== t.k.key || seen.has(o.event_id)) continue
      seen.add(o.event_id)
      all.push(o)
    }
    all.sort(compareObservations)
    delete t.rebuild
    if (all.length > 0) this.extend(t, all)
  }

  /** In-order observations: continue the fold where the key's history ends. */
  private extend (t: Tail, given: LeaseObservation[]): void {
    // Wipes after where the key stood: those before it were folded in already.
    const list = this.registry().merge(given, { ts: t.ts, seq: t.seq }, t.last?.iv)
    const last = t.last
    const derived = last === undefined
      ? deriveIntervals(list)
      : resumable(last.iv) ? deriveIntervals(list, undefined, last.iv) : deriveIntervals(list, last.iv)
    const kept = usedWipesOnly(list, derived)
    // Only wipes that ended or marked nothing: nothing changed.
    if (kept.length === 0) return
    let ivs = derived
    // Resumed (or given evidence as the context), the last interval comes back first, by its id.
    if (last !== undefined && derived[0]?.id === last.iv.id) {
      last.iv = derived[0]
      last.dirty = true
      ivs = derived.slice(1)
    }
    const rows = this.partition(kept, ivs, last, (iv) => this.newRow(iv))
    for (const r of rows) this.write(t.kid, r)
    const end = kept[kept.length - 1] as LeaseObservation
    t.last = rows[rows.length - 1] ?? last
    t.ts = end.ts
    t.seq = end.seq
  }

  private newRow (iv: LeaseInterval): IvRow {
    return { rowid: 0, iv, stored: undefined, main: new ObsWriter(), ids: [], sealed: 0, chunks: [], resetChunks: false, keepId: false, dirty: true }
  }

  /**
   * Hands each observation (in position order) to the interval it belongs to: the last one
   * opened at or before it. Derivation opens an interval with an observation (its first
   * evidence) and gives every later one to the open interval or, nothing being open, to the
   * one just closed (a reclamation's second line), so each interval's observations are those
   * from its first up to the next interval's first. `start`: the interval observations before
   * the first of `ivs` belong to. Returns the rows touched, in order.
   */
  private partition (list: readonly LeaseObservation[], ivs: readonly LeaseInterval[], start: IvRow | undefined, make: (iv: LeaseInterval) => IvRow): IvRow[] {
    const rows: IvRow[] = start === undefined ? [] : [start]
    let target = start
    let next = 0
    for (const o of list) {
      const iv = ivs[next]
      if (iv !== undefined && (iv.evidence[0] === o.event_id || target === undefined)) {
        target = make(iv)
        rows.push(target)
        next++
      }
      this.append(target as IvRow, o)
    }
    // Never reached with derivation's output (every interval is opened by one of `list`).
    for (; next < ivs.length; next++) rows.push(make(ivs[next] as LeaseInterval))
    return start === undefined || start.dirty ? rows : rows.slice(1)
  }

  private append (r: IvRow, o: LeaseObservation): void {
    if (r.main.n >= ROW_OBS) {
      r.chunks.push([r.sealed, Buffer.from(r.main.bytes())])
      r.sealed += r.main.n
      r.main = new ObsWriter()
      r.ids = []
    }
    r.main.add(o)
    r.ids.push(o.event_id)
    r.dirty = true
  }

  private write (kid: number, r: IvRow): void {
    const iv = r.iv
    const doc = intervalDoc(iv, r.ids, r.keepId ? '' : iv.id)
    const n = r.sealed + r.main.n
    if (r.rowid !== 0 && r.stored !== undefined && sameIdentity(r.stored, iv)) {
      this.updLog.run(iv.end, n, doc, r.main.bytes(), r.rowid)
    } else {
      const id = identityOf(iv)
      if (r.rowid === 0) {
        r.rowid = Number(this.insLog.run(kid, id.pos, id.start, iv.end, n, identBlob(id.hwaddr), identBlob(id.client_id), identBlob(id.duid), identBlob(id.duid_ll), id.hostname, doc, r.main.bytes()).lastInsertRowid)
      } else {
        this.updLogFull.run(id.pos, id.start, iv.end, n, identBlob(id.hwaddr), identBlob(id.client_id), identBlob(id.duid), identBlob(id.duid_ll), id.hostname, doc, r.main.bytes(), r.rowid)
      }
      r.stored = id
    }
    if (r.resetChunks) { this.delChunks.run(r.rowid); r.resetChunks = false }
    if (r.chunks.length > 0) {
      for (const [first, bytes] of r.chunks) this.insChunk.run(r.rowid, first, bytes)
      r.chunks = []
    }
    r.dirty = false
  }

  /** A key's state: from the cache, or read (its row in lease_keys is made if new). */
  private tail (key: string, sample: LeaseKey): Tail {
    const hit = this.cache.get(key)
    if (hit !== undefined) {
      hit.used = this.tick
      return hit
    }
    const k = keyOf(sample)
    const found = this.findKey.get(key) as { kid: number } | undefined
    const t: Tail = { kid: found?.kid ?? Number(this.insKey.run(key, k.scope, k.type, k.lease, k.lo, k.hi).lastInsertRowid), k, last: undefined, ts: -Infinity, seq: '', used: this.tick, batch: [] }
    if (found !== undefined) {
      const stored = this.lastRows.all(t.kid, t.kid) as LogRow[]
      const rows = this.damaged(key, () => stored.map((r) => this.lightRowOf(r)))
      rows.sort((a, b) => byPosition(a.row, b.row))
      const last = rows[rows.length - 1]
      if (last !== undefined) {
        t.last = last.row
        // No observation in the row (a converted row whose observations were pruned): where the
        // key stands is not known, every new observation re-derives it.
        t.ts = last.row.ids.length === 0 ? Infinity : last.ts
        t.seq = last.seq
      }
    }
    this.cache.set(key, t)
    this.newcomers.push(key)
    return t
  }

  /** A stored row as an IvRow and the position of its last observation, its observations not made (see ObsWriter.over). */
  private lightRowOf (r: LogRow): { row: IvRow, ts: number, seq: string } {
    const k = keyOf(r)
    const { ids, ts, seq } = readIds(r.obs)
    const d = JSON.parse(r.doc) as unknown[]
    const iv = intervalOf(k, r, ids, intervalId, d)
    const row: IvRow = { rowid: r.rowid, iv, stored: { start: r.start, pos: r.pos, hwaddr: r.hwaddr, client_id: r.client_id, duid: r.duid, duid_ll: r.duid_ll, hostname: r.hostname }, main: ObsWriter.over(r.obs, ids.length), ids, sealed: r.n - ids.length, chunks: [], resetChunks: false, keepId: d[8] != null, dirty: false }
    return { row, ts, seq }
  }

  /** A stored row as an IvRow, with the observations in the row. */
  private rowOf (r: LogRow): Loaded {
    const k = keyOf(r)
    const { writer: main, obs } = resumeObs(r.obs, k)
    const ids = obs.map((o) => o.event_id)
    const iv = intervalOf(k, r, ids, intervalId)
    const row: IvRow = { rowid: r.rowid, iv, stored: { start: r.start, pos: r.pos, hwaddr: r.hwaddr, client_id: r.client_id, duid: r.duid, duid_ll: r.duid_ll, hostname: r.hostname }, main, ids, sealed: r.n - obs.length, chunks: [], resetChunks: false, keepId: (JSON.parse(r.doc) as unknown[])[8] != null, dirty: false }
    return { row, obs }
  }

  /**
   * Re-derives the key of `t` from the last interval that started before `from`: everything
   * earlier is unaffected by observations at or after `from` (see deriveIntervals). `add`: new
   * observations (at or after `from`); `drop`: event ids withdrawn. Returns how many stored
   * observations were dropped.
   */
  private rederive (t: Tail, from: number, add: readonly LeaseObservation[], drop: ReadonlySet<string>): number {
    const anchor = this.anchorPos.get(t.kid, from) as { pos: number } | undefined
    let loaded: LogRow[]
    if (anchor === undefined) loaded = this.rowsAll.all(t.kid) as LogRow[]
    else {
      const prev = this.prevPos.get(t.kid, anchor.pos) as { pos: number } | undefined
      loaded = this.rowsFrom.all(t.kid, prev?.pos ?? anchor.pos) as LogRow[]
    }
    const rows = this.damaged(t.k.key, () => loaded.map((r) => this.rowOf(r))).sort((a, b) => byPosition(a.row, b.row))
    let at = 0
    if (anchor !== undefined) {
      for (let i = 0; i < rows.length; i++) {
        const s = (rows[i] as Loaded).row.iv.start
        if (s !== null && s < from) at = i
      }
    }
    const before = anchor === undefined ? undefined : rows[at - 1]?.row
    const tail = rows.slice(anchor === undefined ? 0 : at)
    const seen = new Set<string>()
    const obs: LeaseObservation[] = []
    let dropped = 0
    for (const { row: r, obs: own } of tail) {
      const sealed = r.sealed === 0 ? [] : this.chunksOf.all(r.rowid) as Array<{ obs: Buffer }>
      const chunks = this.damaged(t.k.key, () => sealed.flatMap((c) => readObs(c.obs, t.k)))
      for (const o of [...chunks, ...own]) {
        if (drop.has(o.event_id)) { dropped++; continue }
        if (!seen.has(o.event_id)) { seen.add(o.event_id); obs.push(o) }
      }
    }
    for (const o of add) if (!seen.has(o.event_id)) { seen.add(o.event_id); obs.push(o) }
    obs.sort(compareObservations)
    // Not spread into obs: a key's whole history may be here (130,000 arguments overflow the stack).
    const all = this.registry().merge(obs, undefined, before?.iv)
    const derived = deriveIntervals(all, before?.iv)
    let ivs = derived
    if (before !== undefined && derived[0]?.id === before.iv.id) {
      before.iv = derived[0]
      before.dirty = true
      ivs = derived.slice(1)
    }
    const existing = new Map(tail.map(({ row: r }) => [r.iv.id, r]))
    const touched = this.partition(usedWipesOnly(all, derived), ivs, before, (iv) => {
      const old = existing.get(iv.id)
      if (old === undefined) return this.newRow(iv)
      existing.delete(iv.id)
      return Object.assign(old, { iv, main: new ObsWriter(), ids: [], sealed: 0, chunks: [], resetChunks: old.sealed > 0, keepId: false, dirty: true })
    })
    for (const r of existing.values()) {
      this.delChunks.run(r.rowid)
      this.delLog.run(r.rowid)
    }
    for (const r of touched) this.write(t.kid, r)
    return dropped
  }

  /**
   * Retention: forgets lease history before `cutoff` (epoch ms): the intervals that ended before
   * it, with the observations they hold.
   */
  prune (cutoff: number): void {
    this.flush()
    this.sync()
    this.cache.clear()
    this.db.prepare('DELETE FROM lease_log_obs WHERE iv IN (SELECT rowid FROM lease_log WHERE "end" IS NOT NULL AND "end" < ?)').run(cutoff)
    this.db.prepare('DELETE FROM lease_log WHERE "end" IS NOT NULL AND "end" < ?').run(cutoff)
    this.db.prepare('DELETE FROM lease_keys WHERE NOT EXISTS (SELECT 1 FROM lease_log l WHERE l.kid = lease_keys.kid)').run()
    this.db.prepare('DELETE FROM lease_intervals WHERE end IS NOT NULL AND end < ?').run(cutoff)
    this.db.prepare('UPDATE coverage SET first = ? WHERE first < ?').run(cutoff, cutoff)
    this.db.prepare('DELETE FROM coverage WHERE last < first').run()
  }

  /**
   * Events replaced or deleted: their observations are removed and each key they shaped is
   * re-derived from before the earliest of them. `observed`: the withdrawn events' observations
   * (the store re-observes the events it removes), which name their keys; without them every
   * stored interval is read to find the events. Observations still pending go too (a replaced
   * event's old observation must not be derived after its withdrawal).
   */
  withdraw (eventIds: readonly string[], observed?: ReadonlyArray<Pick<LeaseObservation, 'event_id' | 'key' | 'ts' | 'seq' | 'scope' | 'type' | 'lease' | 'lo' | 'hi'>>): number {
    if (eventIds.length === 0) return 0
    const ids = new Set(eventIds)
    if (this.pending.length > 0) this.pending = this.pending.filter((o) => !ids.has(o.event_id))
    this.sync()
    const earliest = new Map<string, { ts: number, k: LeaseKey }>()
    const note = (k: LeaseKey, ts: number): void => {
      const e = earliest.get(k.key)
      if (e === undefined || ts < e.ts) earliest.set(k.key, { ts, k })
    }
    // Keys whose rows cannot be read: rebuilt from the stored events, which the caller has
    // already rid of the withdrawn ones (a replaced event's new version, a deleted one gone).
    const broken = new Map<string, { k: LeaseKey, err: Error }>()
    if (observed !== undefined) {
      for (const o of observed) if (ids.has(o.event_id)) note(keyOf(o), o.ts)
    } else {
      for (const r of this.db.prepare(`SELECT ${LOG_COLS} FROM lease_log l JOIN lease_keys k ON k.kid = l.kid`).iterate() as IterableIterator<LogRow>) {
        const k = keyOf(r)
        try {
          const own = this.damaged(k.key, () => readObs(r.obs, k))
          const sealed = r.n > own.length ? this.chunksOf.all(r.rowid) as Array<{ obs: Buffer }> : []
          const chunks = this.damaged(k.key, () => sealed.flatMap((c) => readObs(c.obs, k)))
          for (const o of [...chunks, ...own]) if (ids.has(o.event_id)) note(k, o.ts)
        } catch (err) {
          if (!(err instanceof LeaseHistoryDamagedError)) throw err
          broken.set(k.key, { k, err })
        }
      }
    }
    let keys = 0
    for (const [key, { ts, k }] of earliest) {
      if (this.findKey.get(key) === undefined || broken.has(key)) continue
      this.cache.delete(key)
      try {
        if (this.rederive(this.tail(key, k), ts, [], ids) > 0) keys++
      } catch (err) {
        if (!(err instanceof LeaseHistoryDamagedError)) throw err
        broken.set(key, { k, err })
      }
      this.cache.delete(key)
    }
    for (const [key, { k, err }] of broken) {
      this.rebuild(this.reset(key, k, err), [])
      keys++
    }
    return keys
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

  /**
   * A lease read: pending observations derived first, then read here or, when the store has
   * reader workers (`remote`) and `offThread`, on one of them. A read that meets damaged rows is
   * done again here, where `healing` rebuilds their keys from the stored events (a worker's
   * connection is read-only); the row layout has no events to rebuild from, and fails.
   */
  private async read<K extends LeaseReadOp> (op: K, args: Parameters<LeaseReadOps[K]>, offThread: boolean): Promise<ReturnType<LeaseReadOps[K]>> {
    this.flush()
    if (offThread && this.remote !== undefined) {
      try {
        return await this.remote(op, args)
      } catch (err) {
        // Without the events to rebuild from (the row layout) it would fail here the same way.
        if ((err as { code?: string }).code !== LOG_CODES.leaseHistoryDamaged || this.observationsOf === undefined) throw err
      }
    }
    return this.healing(() => this.reads.run(op, args))
  }

  // Who held an address at a time, and its neighbours, are index lookups of at most
  // MAX_INTERVALS + 1 rows: read here. On a worker the round trip tripled holderAt's p50 and
  // made its p99 3–4 ms instead of 0.7–1.1 (10M events, 1M intervals; see docs/BENCHMARKS.md).
  async intervalsAt (range: { lo: string, hi: string }, time: number, scope?: string): Promise<LeaseInterval[]> {
    return await this.read('leaseIntervalsAt', [range, time, scope], false)
  }

  async neighbours (range: { lo: string, hi: string }, time: number, scope?: string): Promise<{ before?: LeaseInterval, after?: LeaseInterval }> {
    return await this.read('leaseNeighbours', [range, time, scope], false)
  }

  // A history has no such bound (a client's: up to 100,000 intervals, 20,000 decoded in ~270 ms
  // — bench:lease-stall): off this thread, the collector's, and within the readers' deadline.
  async intervals (q: HistoryQuery): Promise<LeaseInterval[]> {
    return await this.read('leaseIntervals', [q], true)
  }

  async intervalsMany (qs: readonly HistoryQuery[]): Promise<LeaseInterval[][]> {
    return await this.read('leaseIntervalsMany', [qs], true)
  }

  /**
   * A statement of the answers' reads, prepared once: `lease at` asks coverage and gaps for
   * every question, and preparing them each time was 12 % of a batch attribution's CPU
   * (issue 22, a CPU profile of 20,000 rows).
   */
  private prepared (sql: string): Database.Statement {
    let st = this.statements.get(sql)
    if (st === undefined) { st = this.db.prepare(sql); this.statements.set(sql, st) }
    return st
  }

  async coverage (scope?: string): Promise<{ from: number, to: number } | undefined> {
    const row = (scope === undefined
      ? this.prepared('SELECT min(first) AS f, max(last) AS l FROM coverage').get()
      : this.prepared('SELECT first AS f, last AS l FROM coverage WHERE scope = ?').get(scope)) as { f: number | null, l: number | null } | undefined
    if (row === undefined || row.f === null || row.l === null) return undefined
    return { from: row.f, to: row.l }
  }

  async recordGap (g: CollectionGap): Promise<void> {
    this.db.prepare('INSERT INTO gaps (scope, from_ts, to_ts, reason) VALUES (?, ?, ?, ?)').run(g.scope, g.from, g.to, g.reason)
  }

  async gapsIn (scope: string, from: number, to: number): Promise<CollectionGap[]> {
    const rows = this.prepared(`SELECT scope, from_ts AS "from", to_ts AS "to", reason FROM gaps
      WHERE from_ts < ? AND to_ts >= ? AND (scope = ? OR scope = '*' OR ? = '*') ORDER BY from_ts`).all(to, from, scope, scope) as CollectionGap[]
    return rows
  }

  async stats (): Promise<{ intervals: number, observations: number }> {
    this.flush()
    const n = (sql: string): number => (this.db.prepare(sql).get() as { n: number }).n
    return {
      intervals: n('SELECT (SELECT count(*) FROM lease_intervals) + (SELECT count(*) FROM lease_log) AS n'),
      observations: n('SELECT coalesce(sum(n), 0) AS n FROM lease_log')
    }
  }

  async scopes (): Promise<string[]> {
    return (this.db.prepare('SELECT scope FROM coverage ORDER BY scope').all() as Array<{ scope: string }>).map((r) => r.scope)
  }

  /** Intervals from Kea's own lease state: lease_intervals, as before schema 10 (few, never derived). */
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

  private put (iv: LeaseInterval): void {
    const first = iv.evidence[0]
    const seq = first === undefined ? '' : sequenceOf(first)
    this.insInterval.run(iv.id, iv.key, iv.origin, iv.scope, iv.type, iv.lo, iv.hi, iv.start,
      iv.start === null || first === undefined ? null : seq, iv.start ?? iv.end ?? 0, seq, iv.end,
      iv.hwaddr ?? null, iv.client_id ?? null, iv.duid ?? null, iv.duid_ll ?? null, iv.hostname?.toLowerCase() ?? null, JSON.stringify(iv))
  }

  /**
   * Schema 10 keeps the observations of earlier versions (the lease_obs table, a row each)
   * until now: each key's stored log intervals move to lease_log as they are (their ids,
   * evidence and ends unchanged), with the observations they were derived from; observations
   * no interval is left for (retention) are derived into intervals. Nothing is dropped.
   */
  private convertLegacy (): void {
    const keys = this.db.prepare(`SELECT key FROM lease_obs UNION SELECT key FROM lease_intervals WHERE origin = 'log'`).pluck().all() as string[]
    const obsOf = this.db.prepare('SELECT event_id, key, ts, seq, doc FROM lease_obs WHERE key = ? ORDER BY ts, seq')
    const ivsOf = this.db.prepare('SELECT doc FROM lease_intervals WHERE key = ? AND origin = \'log\'')
    for (const key of keys) {
      const obs = (obsOf.all(key) as Array<{ event_id: string, key: string, ts: number, seq: string, doc: string }>)
        .map((r) => ({ ...(JSON.parse(r.doc) as Omit<LeaseObservation, 'event_id' | 'key' | 'ts' | 'seq'>), event_id: r.event_id, key: r.key, ts: r.ts, seq: r.seq }))
      let ivs = (ivsOf.all(key) as Row[]).map((r) => JSON.parse(r.doc) as LeaseInterval)
      if (ivs.length === 0) ivs = deriveIntervals(obs)
      const sample = ivs[0] ?? obs[0]
      if (sample === undefined) continue
      const k = keyOf(sample)
      const found = this.findKey.get(key) as { kid: number } | undefined
      const kid = found?.kid ?? Number(this.insKey.run(key, k.scope, k.type, k.lease, k.lo, k.hi).lastInsertRowid)
      const rows = ivs.map((iv) => ({ ...this.newRow(iv), keepId: iv.id !== intervalId(key, iv.evidence[0] ?? '') })).sort(byPosition)
      let i = 0
      const touched = this.partition(obs, rows.map((r) => r.iv), undefined, () => rows[i++] as IvRow)
      for (const r of new Set([...touched, ...rows])) this.write(kid, r)
    }
    this.db.exec(`DELETE FROM lease_intervals WHERE origin = 'log'; DROP TABLE lease_obs; ${LEASE_OBS_VIEW}`)
  }
}

/**
 * `list` without the wipes that ended or marked none of `derived` (a wipe reaches every key of
 * its server, most of them not open then): a key stores a wipe only where its evidence names it.
 */
function usedWipesOnly (list: LeaseObservation[], derived: readonly LeaseInterval[]): LeaseObservation[] {
  if (!list.some((o) => o.action === WIPE_ACTION)) return list
  const named = new Set(derived.flatMap((iv) => iv.evidence))
  return list.filter((o) => o.action !== WIPE_ACTION || named.has(o.event_id))
}
