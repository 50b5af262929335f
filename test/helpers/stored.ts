import Database from 'better-sqlite3'
import type { KeaEvent } from '../../src/parse/event.js'
import { BlockReader, type BlockRow } from '../../src/store/sqlite/blocks/reader.js'

/**
 * Events stored in an SQLite store file, counted by SQL on any connection (tests peek at a file a
 * running keatrail writes): the block layout's blocks plus rows of the row layout.
 */
export const COUNT_STORED_SQL = 'SELECT (SELECT coalesce(sum(n), 0) FROM blocks) + (SELECT count(*) FROM events) AS n'

/** Every event of a block-layout file, block by block as stored (a duplicate shows twice), on a read-only connection. */
export function storedEvents (dbPath: string): KeaEvent[] {
  const db = new Database(dbPath, { readonly: true })
  try {
    const reader = new BlockReader(db)
    const out: KeaEvent[] = []
    for (const row of db.prepare('SELECT id, source_id, min_ts, max_ts, n, codec, seq FROM blocks ORDER BY id').all() as BlockRow[]) {
      const b = reader.block(row)
      for (let i = 0; i < b.n; i++) out.push(b.event(i))
    }
    return out
  } finally {
    db.close()
  }
}
