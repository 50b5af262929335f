import type Database from 'better-sqlite3'
import { StoreReadError } from '../../errors.js'
import { MAX_SNAPSHOTS, type KeaSnapshot, type SnapshotQuery } from '../../kea/snapshot.js'
import { decodeTimeCursor, encodeCursor, withinBudget, type SerializedSnapshotPage, type SnapshotPage, type SnapshotPageQuery, type SnapshotPages } from '../types.js'
import { readError } from './reader.js'

/**
 * Rows deleted per transaction by retention: one snapshot of a server with 1,000 subnets is
 * ~82 KB, so a chunk frees ~80 MB while the WAL holds only the freelist and b-tree pages it
 * changed, and a run interrupted midway (a crash, SQLITE_BUSY) keeps what it already removed.
 */
const PRUNE_CHUNK = 1000

/** Rows read per page while thinning: bounded memory whatever the backlog (a year at 30 s is ~1M rows per service). */
const THIN_PAGE = 5000

/** The snapshot reads a reader worker answers (reader-worker.ts). */
export interface SnapshotReadOps {
  snapshotPage: (q: SnapshotPageQuery) => SerializedSnapshotPage
}
export type SnapshotReadOp = keyof SnapshotReadOps

export function isSnapshotReadOp (op: string): op is SnapshotReadOp {
  return op === 'snapshotPage'
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/**
 * Snapshot pages, synchronous, on one connection: a reader worker's read-only one, or the store's
 * own (':memory:', `readers.workers: 0`). Keys first (the indexes hold server, service, ts and id),
 * then the documents of the page one by one until MAX_PAGE_BYTES: a page never holds more, and no
 * document past it is read (sorting whole rows read every document of the server).
 */
export class SnapshotReader {
  constructor (private readonly db: Database.Database) {}

  run<K extends SnapshotReadOp> (op: K, args: Parameters<SnapshotReadOps[K]>): ReturnType<SnapshotReadOps[K]> {
    if (op === 'snapshotPage') return this.page(...(args as Parameters<SnapshotReadOps['snapshotPage']>)) as ReturnType<SnapshotReadOps[K]>
    throw new StoreReadError('sqlite', `unknown read ${JSON.stringify(op)}`)
  }

  page (q: SnapshotPageQuery): SerializedSnapshotPage {
    const parts: string[] = []
    const params: unknown[] = []
    if (q.server !== undefined) { parts.push('server = ?'); params.push(q.server) }
    if (q.service !== undefined) { parts.push('service = ?'); params.push(q.service) }
    if (q.from !== undefined) { parts.push('ts >= ?'); params.push(q.from) }
    if (q.to !== undefined) { parts.push('ts < ?'); params.push(q.to) }
    if (q.cursor !== undefined) {
      const c = decodeTimeCursor(q.cursor)
      parts.push('ts >= ? AND (ts > ? OR id > ?)')
      params.push(c.ts, c.ts, c.id)
    }
    if (q.subnet_id !== undefined) {
      // Every document is read: documents are JSON.stringify's text, so one holding the subnet
      // holds `"id":<n>` followed by , or } — a text search (~half the cost) before the parse.
      const id = `"id":${JSON.stringify(q.subnet_id)}`
      parts.push('(instr(doc, ?) > 0 OR instr(doc, ?) > 0) AND EXISTS (SELECT 1 FROM json_each(doc, \'$.subnets\') WHERE json_extract(value, \'$.id\') = ?)')
      params.push(`${id},`, `${id}}`, q.subnet_id)
    }
    const size = Math.min(Math.max(Math.trunc(q.size ?? 1000), 1), MAX_SNAPSHOTS)
    try {
      const keys = this.db.prepare(`SELECT id, ts FROM snapshots ${parts.length === 0 ? '' : `WHERE ${parts.join(' AND ')}`} ORDER BY ts, id LIMIT ?`)
        .all(...params, size + 1) as Array<{ id: string, ts: number }>
      const docOf = this.db.prepare('SELECT doc FROM snapshots WHERE id = ?').pluck()
      const docs: string[] = []
      const kept = withinBudget(keys.slice(0, size), (k) => { const doc = docOf.get(k.id) as string; docs.push(doc); return doc.length })
      const last = kept[kept.length - 1]
      return {
        snapshotsJson: utf8.encode(`[${docs.slice(0, kept.length).join(',')}]`),
        ...(kept.length < keys.length && last !== undefined ? { cursor: encodeCursor({ t: String(last.ts), id: last.id }) } : {})
      }
    } catch (err) {
      throw readError(err)
    }
  }
}

/** Kea status snapshots in SQLite. */
export class SqliteSnapshots implements SnapshotPages {
  private readonly upsert: Database.Statement
  private readonly reader: SnapshotReader
  /** Snapshots removed by retention since the store opened (age, thinning and eviction alike). */
  pruned = 0
  /**
   * Where pages are read when the store has reader workers (set by the store): a page with a
   * subnet filter parses every document (~0.5 s for 10,000 of 100 subnets), which on this
   * thread stalled ingestion and /healthz; there it has the readers' deadline and queue.
   */
  remote: (<K extends SnapshotReadOp>(op: K, args: Parameters<SnapshotReadOps[K]>) => Promise<ReturnType<SnapshotReadOps[K]>>) | undefined

  constructor (private readonly db: Database.Database) {
    this.upsert = db.prepare('INSERT OR REPLACE INTO snapshots (id, server, service, ts, state, doc) VALUES (?, ?, ?, ?, ?, ?)')
    this.reader = new SnapshotReader(db)
  }

  async write (snapshots: readonly KeaSnapshot[]): Promise<void> {
    this.db.transaction(() => {
      for (const s of snapshots) this.upsert.run(s.id, s.server, s.service, Date.parse(s['@timestamp']), s.state, JSON.stringify(s))
    })()
  }

  async query (q: SnapshotQuery): Promise<KeaSnapshot[]> {
    return (await this.page(q)).snapshots
  }

  async page (q: SnapshotPageQuery): Promise<SnapshotPage> {
    const p = await this.pageSerialized(q)
    return { snapshots: JSON.parse(fromUtf8.decode(p.snapshotsJson)) as KeaSnapshot[], ...(p.cursor === undefined ? {} : { cursor: p.cursor }) }
  }

  async pageSerialized (q: SnapshotPageQuery): Promise<SerializedSnapshotPage> {
    if (this.remote !== undefined) return await this.remote('snapshotPage', [q])
    return this.db.transaction(() => this.reader.page(q))()
  }

  /**
   * The newest of each server and service: index seeks, a few per pair (the next pair after the
   * last, its newest time, its documents), whatever the history; here, on the store's connection.
   * A query of every row's newest took 150 ms at 10,000 snapshots, and grew with them.
   */
  async latest (server?: string): Promise<KeaSnapshot[]> {
    try {
      const first = this.db.prepare(`SELECT server, service FROM snapshots ${server === undefined ? '' : 'WHERE server = ?'} ORDER BY server, service LIMIT 1`)
      const next = server === undefined
        ? this.db.prepare('SELECT server, service FROM snapshots WHERE (server, service) > (?, ?) ORDER BY server, service LIMIT 1')
        : this.db.prepare('SELECT server, service FROM snapshots WHERE server = ? AND service > ? ORDER BY service LIMIT 1')
      const newest = this.db.prepare('SELECT doc FROM snapshots WHERE server = ? AND service = ? AND ts = (SELECT max(ts) FROM snapshots WHERE server = ? AND service = ?) ORDER BY id').pluck()
      const out: KeaSnapshot[] = []
      let pair = first.get(...(server === undefined ? [] : [server])) as { server: string, service: string } | undefined
      while (pair !== undefined) {
        for (const doc of newest.all(pair.server, pair.service, pair.server, pair.service) as string[]) out.push(JSON.parse(doc) as KeaSnapshot)
        pair = next.get(pair.server, pair.service) as { server: string, service: string } | undefined
      }
      return out
    } catch (err) {
      throw readError(err)
    }
  }

  // Retention (SqliteStore.applyRetention). Synchronous, on the store's connection, like the
  // event retention beside it. Each returns how many snapshots it removed and counts them in
  // `pruned`.

  /**
   * Deletes every snapshot taken before `before` (epoch ms): the age bound is the bound, so a
   * server no longer polled leaves `latest()` once its last snapshot is older (a server still
   * polled has a newer one each interval, an "unreachable" one when it does not answer).
   */
  deleteBefore (before: number): number {
    const chunk = this.db.prepare(`DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots WHERE ts < ? ORDER BY ts LIMIT ${PRUNE_CHUNK})`)
    let removed = 0
    for (;;) {
      const n = this.db.transaction(() => chunk.run(before).changes)()
      removed += n
      if (n < PRUNE_CHUNK) break
    }
    this.pruned += removed
    return removed
  }

  /**
   * Keeps, of the snapshots taken before `before`, the earliest of each server, service and
   * `bucketMs` (aligned to the epoch: whole hours for 3,600,000) and deletes the others, never
   * the newest of a server and service (what `latest()` and the alerts after a restart read).
   * The earliest rather than the last: a bucket cut by `before` keeps the same row when a later
   * run thins the rest of it.
   */
  thin (before: number, bucketMs: number): number {
    const newest = this.newestBy()
    const page = this.db.prepare(`SELECT id, server, service, ts FROM snapshots WHERE ts < ? AND ts >= ? AND (ts > ? OR id > ?) ORDER BY ts, id LIMIT ${THIN_PAGE}`)
    const del = this.db.prepare('DELETE FROM snapshots WHERE id = ?')
    const deleteAll = this.db.transaction((ids: readonly string[]) => { for (const id of ids) del.run(id) })
    // server|service → bucket of the snapshot kept last: rows come in time order, so the first
    // one seen in a bucket is its earliest.
    const kept = new Map<string, number>()
    let after = { ts: -Infinity, id: '' }
    let removed = 0
    for (;;) {
      const rows = page.all(before, after.ts, after.ts, after.id) as Array<{ id: string, server: string, service: string, ts: number }>
      if (rows.length === 0) break
      const drop: string[] = []
      for (const r of rows) {
        const key = keyOf(r.server, r.service)
        const bucket = Math.floor(r.ts / bucketMs)
        if (kept.get(key) === bucket && newest.get(key) !== r.ts) drop.push(r.id)
        else kept.set(key, bucket)
      }
      for (let i = 0; i < drop.length; i += PRUNE_CHUNK) deleteAll(drop.slice(i, i + PRUNE_CHUNK))
      removed += drop.length
      const last = rows[rows.length - 1] as { id: string, ts: number }
      after = { ts: last.ts, id: last.id }
      if (rows.length < THIN_PAGE) break
    }
    this.pruned += removed
    return removed
  }

  /** Deletes the `n` oldest snapshots, never the newest of a server and service; how many went and their documents' bytes. */
  deleteOldest (n: number): { removed: number, bytes: number } {
    const chunk = this.db.prepare(`DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots s
      WHERE ts < (SELECT max(ts) FROM snapshots t WHERE t.server = s.server AND t.service = s.service) ORDER BY ts, id LIMIT ?) RETURNING octet_length(doc)`).pluck()
    let removed = 0
    let bytes = 0
    while (removed < n) {
      const gone = this.db.transaction(() => chunk.all(Math.min(PRUNE_CHUNK, n - removed)) as number[])()
      removed += gone.length
      for (const b of gone) bytes += b
      if (gone.length === 0) break
    }
    this.pruned += removed
    return { removed, bytes }
  }

  /** The bytes of every snapshot's document together (octet_length: from each row's header, no document read). */
  docBytes (): number {
    return this.db.prepare('SELECT coalesce(sum(octet_length(doc)), 0) FROM snapshots').pluck().get() as number
  }

  /** Snapshots `deleteOldest` may still remove (all but the newest of each server and service). */
  evictable (): number {
    return this.db.prepare('SELECT count(*) FROM snapshots s WHERE ts < (SELECT max(ts) FROM snapshots t WHERE t.server = s.server AND t.service = s.service)').pluck().get() as number
  }

  /** The newest snapshot time of each server|service. */
  private newestBy (): Map<string, number> {
    const rows = this.db.prepare('SELECT server, service, max(ts) AS ts FROM snapshots GROUP BY server, service').all() as Array<{ server: string, service: string, ts: number }>
    return new Map(rows.map((r) => [keyOf(r.server, r.service), r.ts]))
  }
}

function keyOf (server: string, service: string): string {
  return `${server}\u0000${service}`
}
