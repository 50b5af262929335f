import type Database from 'better-sqlite3'
import { MAX_SNAPSHOTS, type KeaSnapshot, type SnapshotQuery, type SnapshotStore } from '../../kea/snapshot.js'

/**
 * Rows deleted per transaction by retention: one snapshot of a server with 1,000 subnets is
 * ~82 KB, so a chunk frees ~80 MB while the WAL holds only the freelist and b-tree pages it
 * changed, and a run interrupted midway (a crash, SQLITE_BUSY) keeps what it already removed.
 */
const PRUNE_CHUNK = 1000

/** Rows read per page while thinning: bounded memory whatever the backlog (a year at 30 s is ~1M rows per service). */
const THIN_PAGE = 5000

/** Kea status snapshots in SQLite. */
export class SqliteSnapshots implements SnapshotStore {
  private readonly upsert: Database.Statement
  /** Snapshots removed by retention since the store opened (age, thinning and eviction alike). */
  pruned = 0

  constructor (private readonly db: Database.Database) {
    this.upsert = db.prepare('INSERT OR REPLACE INTO snapshots (id, server, service, ts, state, doc) VALUES (?, ?, ?, ?, ?, ?)')
  }

  async write (snapshots: readonly KeaSnapshot[]): Promise<void> {
    this.db.transaction(() => {
      for (const s of snapshots) this.upsert.run(s.id, s.server, s.service, Date.parse(s['@timestamp']), s.state, JSON.stringify(s))
    })()
  }

  async query (q: SnapshotQuery): Promise<KeaSnapshot[]> {
    const parts: string[] = []
    const params: unknown[] = []
    if (q.server !== undefined) { parts.push('server = ?'); params.push(q.server) }
    if (q.service !== undefined) { parts.push('service = ?'); params.push(q.service) }
    if (q.from !== undefined) { parts.push('ts >= ?'); params.push(q.from) }
    if (q.to !== undefined) { parts.push('ts < ?'); params.push(q.to) }
    if (q.subnet_id !== undefined) {
      parts.push('EXISTS (SELECT 1 FROM json_each(doc, \'$.subnets\') WHERE json_extract(value, \'$.id\') = ?)')
      params.push(q.subnet_id)
    }
    const size = Math.min(Math.max(Math.trunc(q.size ?? 1000), 1), MAX_SNAPSHOTS)
    const rows = this.db.prepare(`SELECT doc FROM snapshots ${parts.length === 0 ? '' : `WHERE ${parts.join(' AND ')}`} ORDER BY ts, id LIMIT ?`)
      .all(...params, size) as Array<{ doc: string }>
    return rows.map((r) => JSON.parse(r.doc) as KeaSnapshot)
  }

  async latest (server?: string): Promise<KeaSnapshot[]> {
    const rows = this.db.prepare(`SELECT doc FROM snapshots s WHERE ts = (SELECT max(ts) FROM snapshots t WHERE t.server = s.server AND t.service = s.service)
      ${server === undefined ? '' : 'AND server = ?'} ORDER BY server, service`).all(...(server === undefined ? [] : [server])) as Array<{ doc: string }>
    return rows.map((r) => JSON.parse(r.doc) as KeaSnapshot)
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
