import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

export interface Spilled { seq: number, time: number, remote: string, data: Buffer }

/**
 * A bounded on-disk FIFO for input that cannot wait (UDP datagrams) while the pipeline is full.
 * Entries are removed only when the batch they went into is acknowledged, and whatever is left
 * at a restart is read again first. When `maxBytes` is reached, pushes are refused and the
 * caller counts the drop.
 */
export class SpillQueue {
  private readonly db: Database.Database
  private readonly insert: Database.Statement
  private bytes: number
  /** Highest seq handed out by take(): entries up to it are in flight. */
  private taken = 0

  constructor (path: string, private readonly maxBytes: number) {
    mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.exec('CREATE TABLE IF NOT EXISTS spill (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, remote TEXT NOT NULL, data BLOB NOT NULL)')
    this.insert = this.db.prepare('INSERT INTO spill (time, remote, data) VALUES (?, ?, ?)')
    this.bytes = (this.db.prepare('SELECT coalesce(sum(length(data)), 0) AS n FROM spill').get() as { n: number }).n
  }

  /** Stores one entry; false when the queue is full (the caller drops and counts it). */
  push (data: Buffer, remote: string, time: number): boolean {
    if (this.bytes + data.length > this.maxBytes) return false
    this.insert.run(time, remote, data)
    this.bytes += data.length
    return true
  }

  /** The next entries not yet in flight, oldest first. */
  take (limit: number): Spilled[] {
    const rows = this.db.prepare('SELECT seq, time, remote, data FROM spill WHERE seq > ? ORDER BY seq LIMIT ?').all(this.taken, limit) as Spilled[]
    const last = rows[rows.length - 1]
    if (last !== undefined) this.taken = last.seq
    return rows
  }

  /** The entries up to `seq` are stored: forget them. */
  release (seq: number): void {
    const freed = (this.db.prepare('SELECT coalesce(sum(length(data)), 0) AS n FROM spill WHERE seq <= ?').get(seq) as { n: number }).n
    this.db.prepare('DELETE FROM spill WHERE seq <= ?').run(seq)
    this.bytes -= freed
  }

  /** Entries waiting (in flight ones included). */
  count (): number {
    return (this.db.prepare('SELECT count(*) AS n FROM spill').get() as { n: number }).n
  }

  get pendingBytes (): number {
    return this.bytes
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}
