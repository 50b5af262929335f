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
 * Events a store rejected (e.g. an Elasticsearch mapping error), with the reason: kept, bounded in
 * entries and in bytes, inspectable and retryable (`keatrail deadletter list|retry`). When full,
 * the oldest entries go and `dropped` counts them: never silently.
 */
export class DeadLetterStore {
  private readonly db: Database.Database
  private readonly maxEntries: number
  private readonly maxBytes: number
  /** Characters of the documents held (their JSON): what maxBytes bounds. */
  private bytes: number
  /** Entries removed because the store was full. */
  dropped = 0

  /**
   * `maxBytes`: the entries' documents together (as JSON text). By entries alone, 100,000 events
   * of 1 MiB lines held ~100 GB; 256 MiB holds ~250,000 Kea events of ~1 KB, more than maxEntries.
   */
  constructor (path: string, maxEntries = 100_000, maxBytes = 256 * 1024 * 1024) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.maxEntries = maxEntries
    this.db.exec(`CREATE TABLE IF NOT EXISTS deadletter (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, store TEXT NOT NULL,
      event_id TEXT NOT NULL, reason TEXT NOT NULL, doc TEXT NOT NULL)`)
    this.maxBytes = maxBytes
    this.bytes = this.db.prepare('SELECT coalesce(sum(length(doc)), 0) FROM deadletter').pluck().get() as number
  }

  add (store: string, items: ReadonlyArray<{ event: KeaEvent, reason: string }>): void {
    if (items.length === 0) return
    const insert = this.db.prepare('INSERT INTO deadletter (time, store, event_id, reason, doc) VALUES (?, ?, ?, ?, ?)')
    const now = new Date().toISOString()
    const evict = this.db.prepare('DELETE FROM deadletter WHERE seq IN (SELECT seq FROM deadletter ORDER BY seq LIMIT ?) RETURNING length(doc) AS n')
    this.db.transaction(() => {
      for (const it of items) {
        const doc = JSON.stringify(it.event)
        insert.run(now, store, it.event.event.id, it.reason.slice(0, 4000), doc)
        this.bytes += doc.length
      }
      let over = Math.max(0, this.count() - this.maxEntries)
      // Over the bytes too: the oldest go, one at a time, until the rest fits (the newest stays).
      for (;;) {
        const gone = evict.all(over > 0 ? over : this.bytes > this.maxBytes && this.count() > 1 ? 1 : 0) as Array<{ n: number }>
        if (gone.length === 0) break
        for (const g of gone) this.bytes -= g.n
        this.dropped += gone.length
        over = 0
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
    const del = this.db.prepare('DELETE FROM deadletter WHERE seq = ? RETURNING length(doc) AS n')
    this.db.transaction(() => { for (const s of seqs) for (const g of del.all(s) as Array<{ n: number }>) this.bytes -= g.n })()
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
