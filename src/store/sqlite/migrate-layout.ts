import type { KeaEvent } from '../../parse/event.js'
import type { SubnetMap } from '../../leases/wipes.js'
import type { LeaseDomains } from '../../leases/domains.js'
import { openDatabase } from './open.js'
import { SqliteRowStore } from './row-store.js'
import { SqliteReader, type StoredRow } from './reader.js'
import { BlockReader } from './blocks/reader.js'
import { BlockWriter } from './blocks/writer.js'

export interface LayoutProgress { converted: number, total: number }

/** Rows converted per transaction: a crash loses at most this much work, and the reader of the file waits at most one commit. */
const CHUNK_ROWS = 20_000

/**
 * Converts a file of the row layout into the block layout, in place (`keatrail store migrate`).
 * Resumable: each chunk of rows is written as blocks and marked converted (`meta.rows_converted`,
 * the greatest rowid done) in one transaction, so a conversion stopped at any point continues
 * where it stopped; the rows are dropped only once all are in blocks. Lease history is kept as
 * it is (it is keyed by event id); its observations pending in a process that crashed are derived
 * first, by opening the file in its own layout.
 * Returns how many events were converted now (0: nothing to do).
 */
export async function migrateRowsToBlocks (path: string, onProgress: (p: LayoutProgress) => void = () => {}, subnets?: SubnetMap, domains?: LeaseDomains): Promise<number> {
  // Derives anything a crashed writer left pending, and brings the schema up to date.
  const rows = new SqliteRowStore({ path, readers: { workers: 0 } }, subnets, domains)
  await rows.close()
  const { db } = openDatabase({ path, busyTimeoutMs: 5000, synchronous: 'full', cacheMiB: 64 })
  try {
    const reader = new SqliteReader(db)
    const writer = new BlockWriter(db, new BlockReader(db))
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (\'rows_converted\', 0)').run()
    const done = db.prepare('SELECT value FROM meta WHERE key = \'rows_converted\'').pluck()
    const mark = db.prepare('UPDATE meta SET value = ? WHERE key = \'rows_converted\'')
    const total = db.prepare('SELECT count(*) FROM events').pluck().get() as number
    if (total === 0) return 0
    const page = db.prepare('SELECT rowid, id, doc FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?')
    let converted = db.prepare('SELECT count(*) FROM events WHERE rowid <= ?').pluck().get(done.get()) as number
    const chunk = db.transaction((after: number): number => {
      const list = page.all(after, CHUNK_ROWS) as StoredRow[]
      if (list.length === 0) return after
      const events: KeaEvent[] = list.map((r) => reader.eventOf(r))
      writer.write(events)
      const last = (list[list.length - 1] as StoredRow).rowid
      mark.run(last)
      converted += list.length
      return last
    })
    for (let after = done.get() as number; ;) {
      onProgress({ converted, total })
      const next = chunk(after)
      if (next === after) break
      after = next
    }
    // Every row is in a block: the row layout's tables are emptied (no trigger: a per-row delete
    // of 10M full-text entries would take longer than the conversion), and the lease watermark
    // moves to the block layout's write sequence (every converted event was derived above).
    db.transaction(() => {
      db.exec(`DROP TRIGGER IF EXISTS events_ad;
        INSERT INTO events_fts (events_fts) VALUES ('delete-all');
        DELETE FROM event_ips; DELETE FROM event_docs; DELETE FROM events;
        CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
          DELETE FROM events_fts WHERE rowid = old.rowid;
          DELETE FROM event_ips WHERE event = old.rowid;
        END;`)
      db.prepare('UPDATE meta SET value = (SELECT value FROM meta WHERE key = \'block_seq\') WHERE key = \'leases_through\'').run()
      mark.run(0)
    })()
    db.pragma('incremental_vacuum')
    onProgress({ converted: total, total })
    return total
  } finally {
    db.close()
  }
}
