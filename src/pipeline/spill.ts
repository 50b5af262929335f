import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

export interface Spilled { seq: number, time: number, remote: string, data: Buffer }

/** How long after a failed open or delete it is tried again (a full disk does not clear at once). */
const REOPEN_MS = 1000

/**
 * A bounded on-disk FIFO for input that cannot wait (UDP datagrams) while the pipeline is full.
 * Entries are removed only when the batch they went into is acknowledged, and whatever is left
 * at a restart is read again first. When `maxBytes` is reached, pushes are refused and the
 * caller counts the drop.
 *
 * It never throws: it exists for the moment things go wrong, which includes its own disk being
 * full. A write that fails is a refused push (the caller counts a drop), a read that fails reads
 * nothing, a release that fails is done again later, and a database that cannot be opened (at
 * start on a full disk) is opened again later; `onError` hears of each failure.
 */
export class SpillQueue {
  private db: Database.Database | undefined
  private insert: Database.Statement | undefined
  private bytes = 0
  /** Highest seq handed out by take(): entries up to it are in flight. */
  private taken = 0
  /** Entries up to it are acknowledged but their delete failed: deleted at the next chance. */
  private unreleased = 0
  /** After a failed delete, not again before this: not one failing transaction per datagram. */
  private releaseAt = 0
  private reopenAt = 0

  constructor (private readonly path: string, private readonly maxBytes: number, private readonly onError?: (op: string, err: Error) => void) {
    this.open()
  }

  /** Whether the database is open (opening it if it is time to try again). */
  private open (): boolean {
    if (this.db !== undefined) return true
    if (Date.now() < this.reopenAt) return false
    let db: Database.Database | undefined
    try {
      mkdirSync(dirname(this.path), { recursive: true })
      db = new Database(this.path)
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.exec('CREATE TABLE IF NOT EXISTS spill (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, remote TEXT NOT NULL, data BLOB NOT NULL)')
      this.insert = db.prepare('INSERT INTO spill (time, remote, data) VALUES (?, ?, ?)')
      this.bytes = (db.prepare('SELECT coalesce(sum(length(data)), 0) AS n FROM spill').get() as { n: number }).n
      this.db = db
      return true
    } catch (err) {
      try { db?.close() } catch { /* already failed: the open error is the one to report */ }
      this.reopenAt = Date.now() + REOPEN_MS
      this.onError?.('open', err as Error)
      return false
    }
  }

  /** Stores one entry; false when the queue is full or cannot be written (the caller drops and counts it). */
  push (data: Buffer, remote: string, time: number): boolean {
    if (!this.open()) return false
    this.retryRelease()
    if (this.bytes + data.length > this.maxBytes) return false
    try {
      this.insert?.run(time, remote, data)
    } catch (err) {
      this.onError?.('write', err as Error)
      return false
    }
    this.bytes += data.length
    return true
  }

  /** The next entries not yet in flight, oldest first (none while they cannot be read). */
  take (limit: number): Spilled[] {
    const db = this.db
    if (db === undefined) return []
    this.retryRelease()
    let rows: Spilled[]
    try {
      rows = db.prepare('SELECT seq, time, remote, data FROM spill WHERE seq > ? ORDER BY seq LIMIT ?').all(this.taken, limit) as Spilled[]
    } catch (err) {
      this.onError?.('read', err as Error)
      return []
    }
    const last = rows[rows.length - 1]
    if (last !== undefined) this.taken = last.seq
    return rows
  }

  /** The entries up to `seq` are stored: forget them (later, if the delete fails now). */
  release (seq: number): void {
    this.unreleased = Math.max(this.unreleased, seq)
    this.retryRelease(true)
  }

  private retryRelease (now = false): void {
    const db = this.db
    const seq = this.unreleased
    if (db === undefined || seq === 0 || (!now && Date.now() < this.releaseAt)) return
    try {
      const freed = db.transaction(() => {
        const n = (db.prepare('SELECT coalesce(sum(length(data)), 0) AS n FROM spill WHERE seq <= ?').get(seq) as { n: number }).n
        db.prepare('DELETE FROM spill WHERE seq <= ?').run(seq)
        return n
      })()
      this.bytes -= freed
      this.unreleased = 0
    } catch (err) {
      // Kept: a restart before the delete succeeds reads these again (stored twice, never lost).
      this.releaseAt = Date.now() + REOPEN_MS
      this.onError?.('release', err as Error)
    }
  }

  /** Entries waiting (in flight ones included). */
  count (): number {
    if (this.db === undefined) return 0
    return (this.db.prepare('SELECT count(*) AS n FROM spill').get() as { n: number }).n
  }

  /** Bytes of the entries waiting (in flight ones included). */
  get pendingBytes (): number {
    return this.bytes
  }

  close (): void {
    const db = this.db
    if (db === undefined) return
    this.retryRelease(true)
    try { db.close() } catch (err) { this.onError?.('close', err as Error) }
    this.db = undefined
  }
}
