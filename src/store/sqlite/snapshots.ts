import type Database from 'better-sqlite3'
import { MAX_SNAPSHOTS, type KeaSnapshot, type SnapshotQuery, type SnapshotStore } from '../../kea/snapshot.js'

/** Kea status snapshots in SQLite. */
export class SqliteSnapshots implements SnapshotStore {
  private readonly upsert: Database.Statement

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
}
