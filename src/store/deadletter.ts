import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { KeaEvent } from '../parse/event.js'

export interface DeadLetter {
  seq: number
  time: string
  store: string
  eventId: string
  reason: string
  event: KeaEvent
}

/**
 * Events a store rejected (e.g. an Elasticsearch mapping error), with the reason: kept, bounded,
 * inspectable and retryable (`keatrail deadletter list|retry`). When full, the oldest entries go
 * and `dropped` counts them: never silently.
 */
export class DeadLetterStore {
  private readonly db: Database.Database
  private readonly maxEntries: number
  /** Entries removed because the store was full. */
  dropped = 0

  constructor (path: string, maxEntries = 100_000) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.maxEntries = maxEntries
    this.db.exec(`CREATE TABLE IF NOT EXISTS deadletter (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, store TEXT NOT NULL,
      event_id TEXT NOT NULL, reason TEXT NOT NULL, doc TEXT NOT NULL)`)
  }

  add (store: string, items: ReadonlyArray<{ event: KeaEvent, reason: string }>): void {
    if (items.length === 0) return
    const insert = this.db.prepare('INSERT INTO deadletter (time, store, event_id, reason, doc) VALUES (?, ?, ?, ?, ?)')
    const now = new Date().toISOString()
    this.db.transaction(() => {
      for (const it of items) insert.run(now, store, it.event.event.id, it.reason.slice(0, 4000), JSON.stringify(it.event))
      const over = this.count() - this.maxEntries
      if (over > 0) {
        this.db.prepare('DELETE FROM deadletter WHERE seq IN (SELECT seq FROM deadletter ORDER BY seq LIMIT ?)').run(over)
        this.dropped += over
      }
    })()
  }

  count (): number {
    return (this.db.prepare('SELECT count(*) AS n FROM deadletter').get() as { n: number }).n
  }

  list (limit = 100): DeadLetter[] {
    return (this.db.prepare('SELECT * FROM deadletter ORDER BY seq LIMIT ?').all(limit) as Array<{ seq: number, time: string, store: string, event_id: string, reason: string, doc: string }>)
      .map((r) => ({ seq: r.seq, time: r.time, store: r.store, eventId: r.event_id, reason: r.reason, event: JSON.parse(r.doc) as KeaEvent }))
  }

  remove (seqs: readonly number[]): void {
    const del = this.db.prepare('DELETE FROM deadletter WHERE seq = ?')
    this.db.transaction(() => { for (const s of seqs) del.run(s) })()
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}

/**
 * Writes up to `limit` dead-lettered events to the store again. Those it accepts (or already
 * has) leave the dead-letter store; those it rejects again are dead-lettered anew by the store.
 */
export async function retryDeadLetters (store: { write: (events: KeaEvent[]) => Promise<{ written: number, duplicates: number, deadLettered: number }> }, dlq: DeadLetterStore, limit: number): Promise<{ retried: number, written: number, duplicates: number, deadLettered: number, remaining: number }> {
  const entries = dlq.list(limit)
  const r = await store.write(entries.map((e) => e.event))
  dlq.remove(entries.map((e) => e.seq))
  return { retried: entries.length, ...r, remaining: dlq.count() }
}
