import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { KeaEvent } from '../parse/event.js'
import { withinBudget } from './types.js'

/** A dead-lettered event without its document: what listing it needs. */
export interface DeadLetterEntry {
  seq: number
  time: string
  store: string
  eventId: string
  reason: string
  /** The document's bytes (UTF-8 JSON), from the row's header: the document is not read. */
  bytes: number
}

export interface DeadLetter extends Omit<DeadLetterEntry, 'bytes'> {
  event: KeaEvent
}

/**
 * A retry's step: this many entries or this many bytes of their documents, whichever comes
 * first, written to the store and then removed before the next is read. One step of everything
 * (100,000 entries of ~2 KB) held every document, parsed, then the store's request for them all:
 * out of memory in a 256 MiB heap.
 */
export const RETRY_CHUNK = 500
export const RETRY_CHUNK_BYTES = 4 * 1024 * 1024

/**
 * Events a store rejected (e.g. an Elasticsearch mapping error), with the reason: kept, bounded in
 * entries and in bytes, inspectable and retryable (`keatrail deadletter list|retry`). When full,
 * the oldest entries go and `dropped` counts them: never silently.
 */
export class DeadLetterStore {
  private readonly db: Database.Database
  private readonly maxEntries: number
  private readonly maxBytes: number
  /** Bytes (UTF-8) of the documents held (their JSON): what maxBytes bounds. A running total, counted again when it passes a bound. */
  private bytes: number
  /** Entries held, a running total as `bytes`. */
  private entries: number
  /** PRAGMA data_version when the totals were last counted: it changes when another connection commits. */
  private seenVersion: number
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
    this.entries = 0
    this.bytes = 0
    this.resync()
    this.seenVersion = this.db.pragma('data_version', { simple: true }) as number
  }

  add (store: string, items: ReadonlyArray<{ event: KeaEvent, reason: string }>): void {
    if (items.length === 0) return
    const insert = this.db.prepare('INSERT INTO deadletter (time, store, event_id, reason, doc) VALUES (?, ?, ?, ?, ?)')
    const now = new Date().toISOString()
    this.db.transaction(() => {
      for (const it of items) {
        const doc = JSON.stringify(it.event)
        insert.run(now, store, it.event.event.id, it.reason.slice(0, 4000), doc)
        this.bytes += Buffer.byteLength(doc)
        this.entries++
      }
      if (this.entries <= this.maxEntries && this.bytes <= this.maxBytes) return
      // Over a bound by the running totals. Counted again only when another connection wrote
      // (`keatrail deadletter retry` in another process removes entries this one does not see):
      // a store at its bound is over it at nearly every add.
      const version = this.db.pragma('data_version', { simple: true }) as number
      if (version !== this.seenVersion) { this.resync(); this.seenVersion = version }
      // The oldest go, by count, then in chunks sized by the mean entry until the rest fits
      // (the newest stays); each DELETE reads only the documents it removes.
      const evict = this.db.prepare('DELETE FROM deadletter WHERE seq IN (SELECT seq FROM deadletter WHERE seq < (SELECT max(seq) FROM deadletter) ORDER BY seq LIMIT ?) RETURNING octet_length(doc)').pluck()
      const drop = (n: number): number => {
        const gone = evict.all(n) as number[]
        for (const b of gone) this.bytes -= b
        this.entries -= gone.length
        this.dropped += gone.length
        return gone.length
      }
      if (this.entries > this.maxEntries) drop(this.entries - this.maxEntries)
      while (this.bytes > this.maxBytes && this.entries > 1) {
        const chunk = Math.min(1000, Math.max(1, Math.ceil((this.bytes - this.maxBytes) / (this.bytes / this.entries))))
        if (drop(chunk) === 0) break
      }
    })()
  }

  /** The running totals from the table (octet_length: from each row's header, no document read). */
  private resync (): void {
    this.entries = this.count()
    this.bytes = this.db.prepare('SELECT coalesce(sum(octet_length(doc)), 0) FROM deadletter').pluck().get() as number
  }

  count (): number {
    return (this.db.prepare('SELECT count(*) AS n FROM deadletter').get() as { n: number }).n
  }

  /** The oldest `limit` entries with their events (`keatrail deadletter list --json`, a retry's steps: see `batch`). */
  list (limit = 100): DeadLetter[] {
    return this.batch(0, Number.MAX_SAFE_INTEGER, limit, Infinity)
  }

  /** The oldest `limit` entries without their documents: none is read, nor parsed (the API's list answers these only). */
  summaries (limit = 100): DeadLetterEntry[] {
    return this.rows(0, Number.MAX_SAFE_INTEGER, limit)
  }

  /** The entries after `afterSeq` up to `throughSeq`, oldest first, at most `limit`, without their documents. */
  private rows (afterSeq: number, throughSeq: number, limit: number): DeadLetterEntry[] {
    return (this.db.prepare('SELECT seq, time, store, event_id, reason, octet_length(doc) AS bytes FROM deadletter WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?')
      .all(afterSeq, throughSeq, limit) as Array<{ seq: number, time: string, store: string, event_id: string, reason: string, bytes: number }>)
      .map((r) => ({ seq: r.seq, time: r.time, store: r.store, eventId: r.event_id, reason: r.reason, bytes: r.bytes }))
  }

  /**
   * The entries after `afterSeq` up to `throughSeq`, oldest first, with their events: at most
   * `limit`, and at most `maxBytes` of documents (always one). Each document is read only once it
   * fits. A document that does not parse is left where it is and skipped (`step` names them).
   */
  batch (afterSeq: number, throughSeq: number, limit: number, maxBytes: number): DeadLetter[] {
    return this.step(afterSeq, throughSeq, limit, maxBytes).entries
  }

  /**
   * `batch` with what a retry needs besides: the entries whose document is no event (it does not
   * parse, or parses to something without an event's id, raw record, time and parse status:
   * damaged on disk, or written by another version) and the last seq the step covered, so that
   * the entries after them are retried all the same (one such entry stopped every retry at it
   * before: a JSON parse error, or the store's TypeError on `{}`).
   */
  step (afterSeq: number, throughSeq: number, limit: number, maxBytes: number): { entries: DeadLetter[], unreadable: Array<Omit<DeadLetterEntry, 'bytes'>>, lastSeq: number | undefined } {
    const docOf = this.db.prepare('SELECT doc FROM deadletter WHERE seq = ?').pluck()
    const rows = withinBudget(this.rows(afterSeq, throughSeq, limit), (e) => e.bytes, maxBytes)
    const entries: DeadLetter[] = []
    const unreadable: Array<Omit<DeadLetterEntry, 'bytes'>> = []
    for (const { bytes: _bytes, ...e } of rows) {
      // Removed since the rows were listed (another process's retry): skipped.
      const doc = docOf.get(e.seq) as string | undefined
      if (doc === undefined) continue
      const event = eventOf(doc)
      if (event === undefined) unreadable.push(e)
      else entries.push({ ...e, event })
    }
    return { entries, unreadable, lastSeq: rows[rows.length - 1]?.seq }
  }

  /** The newest entry's seq (0 when empty): what a retry stops at, so entries it dead-letters again are not retried in the same run. */
  lastSeq (): number {
    return this.db.prepare('SELECT coalesce(max(seq), 0) FROM deadletter').pluck().get() as number
  }

  remove (seqs: readonly number[]): void {
    const del = this.db.prepare('DELETE FROM deadletter WHERE seq = ? RETURNING octet_length(doc) AS n')
    this.db.transaction(() => {
      for (const s of seqs) for (const g of del.all(s) as Array<{ n: number }>) { this.bytes -= g.n; this.entries-- }
    })()
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}

/**
 * Writes up to `limit` dead-lettered events to the store again, in steps of RETRY_CHUNK entries or
 * RETRY_CHUNK_BYTES, each written and then removed before the next is read: memory is one step's
 * whatever the limit, and a failure (the store down) keeps only the step it failed in and those
 * after it. Those the store accepts (or already has) leave the dead-letter store; those it rejects
 * again are dead-lettered anew by the store, after the entries this run started with, and are not
 * retried again in the same run.
 */
export async function retryDeadLetters (store: { write: (events: KeaEvent[]) => Promise<{ written: number, duplicates: number, deadLettered: number }> }, dlq: DeadLetterStore, limit: number): Promise<{ retried: number, written: number, duplicates: number, deadLettered: number, unreadable: number, remaining: number }> {
  const through = dlq.lastSeq()
  const total = { retried: 0, written: 0, duplicates: 0, deadLettered: 0, unreadable: 0 }
  let after = 0
  // `limit` counts the entries written: unreadable ones are passed (however many lead the
  // store), within the store's own bound (entries up to `through`, maxBytes of documents).
  while (total.retried < limit) {
    const { entries, unreadable, lastSeq } = dlq.step(after, through, Math.min(RETRY_CHUNK, limit - total.retried), RETRY_CHUNK_BYTES)
    if (lastSeq === undefined) break
    // Unreadable entries stay (listed by `keatrail deadletter list --json`, for an operator's decision), counted.
    total.unreadable += unreadable.length
    after = lastSeq
    if (entries.length === 0) {
      // Steps of nothing to write never wait on the store: let the event loop run between them.
      await new Promise((resolve) => setImmediate(resolve))
      continue
    }
    const r = await store.write(entries.map((e) => e.event))
    dlq.remove(entries.map((e) => e.seq))
    total.retried += entries.length
    total.written += r.written
    total.duplicates += r.duplicates
    total.deadLettered += r.deadLettered
  }
  return { ...total, remaining: dlq.count() }
}

/** A stored document as the event it must be for a store to take it, else undefined. */
function eventOf (doc: string): KeaEvent | undefined {
  let v: unknown
  try {
    v = JSON.parse(doc)
  } catch {
    return undefined
  }
  const e = v as Partial<KeaEvent> | null
  if (typeof e !== 'object' || e === null || typeof e['@timestamp'] !== 'string' || typeof e.event !== 'object' || e.event === null ||
    typeof e.event.id !== 'string' || typeof e.event.original !== 'string' || typeof e.kea !== 'object' || e.kea === null ||
    typeof e.kea.parse !== 'object' || e.kea.parse === null) return undefined
  return e as KeaEvent
}
