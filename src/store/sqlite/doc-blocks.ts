import { deflateRawSync, inflateRawSync } from 'node:zlib'
import type Database from 'better-sqlite3'
import { DOC_DICTIONARY_V1 } from './doc-dictionary.js'

/** Events per block: 16 keeps a page of scattered hits cheap to inflate and still compresses ~12× (bench/store). */
export const BLOCK_EVENTS = 16
const DICTIONARIES: Record<number, Buffer> = { 1: Buffer.from(DOC_DICTIONARY_V1) }
const CURRENT_DICTIONARY = 1
/** Inflated blocks kept for reads: a page of a time window touches a handful, consecutively. */
const CACHE_BLOCKS = 64

/**
 * Event documents, deflated in blocks of consecutive event rowids against a preset dictionary:
 * a ~1 KB JSON document costs ~80 bytes instead of its length, which keeps a 10M-event store
 * inside the page cache (bench/api). A block is keyed by its first event's rowid, so an event
 * row needs no pointer: its block is the one with the greatest `first` ≤ its rowid.
 */
export class DocBlocks {
  private readonly insert: Database.Statement
  private readonly find: Database.Statement
  private readonly cache = new Map<number, string[]>()

  constructor (private readonly db: Database.Database) {
    // REPLACE: rowids are reused after the newest events were deleted; a new block then
    // takes over the stale one's key.
    this.insert = db.prepare('INSERT OR REPLACE INTO event_docs (first, n, dict, data) VALUES (?, ?, ?, ?)')
    this.find = db.prepare('SELECT first, n, dict, data FROM event_docs WHERE first <= ? ORDER BY first DESC LIMIT 1')
  }

  /**
   * Stores the documents of events just inserted with rowids `rowids` (ascending), as blocks
   * of consecutive rowids. Called inside the store's write transaction.
   */
  write (rowids: readonly number[], docs: readonly string[]): void {
    let start = 0
    for (let i = 1; i <= rowids.length; i++) {
      if (i < rowids.length && i - start < BLOCK_EVENTS && rowids[i] === (rowids[i - 1] as number) + 1) continue
      const first = rowids[start] as number
      const data = deflateRawSync(docs.slice(start, i).join('\n'), { level: 1, dictionary: DICTIONARIES[CURRENT_DICTIONARY] })
      this.insert.run(first, i - start, CURRENT_DICTIONARY, data)
      this.forget(first, i - start)
      start = i
    }
  }

  /** Drops every cached block: the caller found one stale. */
  forgetAll (): void {
    this.cache.clear()
  }

  /** Drops cached blocks overlapping rowids first .. first + n - 1 (stale after rowid reuse). */
  private forget (first: number, n: number): void {
    for (const [f, docs] of this.cache) if (f < first + n && first < f + docs.length) this.cache.delete(f)
  }

  /** The document of the event stored at `rowid`, or undefined if its block is missing. */
  read (rowid: number): string | undefined {
    for (const [first, docs] of this.cache) {
      if (rowid >= first && rowid < first + docs.length) {
        // Most recently used last: Map iteration order is insertion order.
        this.cache.delete(first)
        this.cache.set(first, docs)
        return docs[rowid - first]
      }
    }
    const row = this.find.get(rowid) as { first: number, n: number, dict: number, data: Buffer } | undefined
    if (row === undefined || rowid >= row.first + row.n) return undefined
    const dictionary = DICTIONARIES[row.dict]
    if (dictionary === undefined) throw new Error(`event documents compressed with dictionary v${row.dict}, unknown to this keatrail`)
    const docs = inflateRawSync(row.data, { dictionary }).toString('utf8').split('\n')
    this.cache.set(row.first, docs)
    if (this.cache.size > CACHE_BLOCKS) this.cache.delete(this.cache.keys().next().value as number)
    return docs[rowid - row.first]
  }

  /** Deletes the blocks holding these (deleted) rowids if none of their events are left: one lookup per rowid, no scan. */
  pruneBlocksOf (rowids: readonly number[]): void {
    this.forgetAll()
    const stmt = this.db.prepare(`DELETE FROM event_docs WHERE first = (SELECT first FROM event_docs WHERE first <= ? ORDER BY first DESC LIMIT 1)
      AND NOT EXISTS (SELECT 1 FROM events WHERE rowid >= event_docs.first AND rowid < event_docs.first + event_docs.n)`)
    for (const r of rowids) stmt.run(r)
  }

  /** Deletes the blocks none of whose events are left (after retention deleted events up to `maxRowid`). */
  prune (maxRowid: number): number {
    this.forgetAll()
    return this.db.prepare(`DELETE FROM event_docs WHERE first <= ? AND NOT EXISTS
      (SELECT 1 FROM events WHERE rowid >= event_docs.first AND rowid < event_docs.first + event_docs.n)`).run(maxRowid).changes
  }
}
