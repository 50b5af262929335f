import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { StoreSchemaError } from '../../errors.js'
import { parseAddressOrPrefix } from '../../leases/address.js'
import { MIGRATIONS } from './migrations.js'
import type { HealthCount } from './health-count.js'
import type { ReaderPool } from './reader-pool.js'

export interface OpenOptions {
  path: string
  busyTimeoutMs: number
  synchronous: 'full' | 'normal'
  cacheMiB: number
  /** SQLite mmap_size in MiB (0: reads go through read(2) into the page cache). */
  mmapMiB?: number
  /** Called with the file's schema version before any migration: throws to refuse the file untouched. */
  accept?: (db: Database.Database, version: number) => void
}

/** Opens (creating it and its directory) the store's file with the settings every layout uses, and brings its schema up to date. */
export function openDatabase (o: OpenOptions): { db: Database.Database, from: number } {
  if (o.path !== ':memory:') mkdirSync(dirname(o.path), { recursive: true })
  const db = new Database(o.path, { timeout: o.busyTimeoutMs })
  // auto_vacuum must be chosen before the first table exists; incremental mode lets
  // retention give pages back without a full VACUUM.
  // 16 KiB pages: fewer page splits across the indexes and FTS segments; 30k vs 24k
  // events/s at 4 KiB (bench/store). Like auto_vacuum, only effective on a new file.
  db.pragma('page_size = 16384')
  db.pragma('auto_vacuum = INCREMENTAL')
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${o.synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma(`cache_size = -${o.cacheMiB * 1024}`)
  if (o.mmapMiB !== undefined && o.mmapMiB > 0) db.pragma(`mmap_size = ${o.mmapMiB * 1024 * 1024}`)
  // CIDR queries compare fixed-width hex forms of addresses (src/leases/address.ts).
  db.function('keatrail_ip_hex', { deterministic: true }, (ip: unknown) => {
    if (typeof ip !== 'string') return null
    try { return parseAddressOrPrefix(ip).lo } catch { return null }
  })
  const version = db.pragma('user_version', { simple: true }) as number
  const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0
  if (version > latest) {
    db.close()
    throw new StoreSchemaError('sqlite', `${o.path} has schema version ${version}, newer than this keatrail (${latest}); upgrade keatrail`)
  }
  if (o.accept !== undefined) {
    try {
      o.accept(db, version)
    } catch (err) {
      db.close()
      throw err
    }
  }
  return { db, from: migrate(db) }
}

/** Applies pending migrations; returns the version the file had (0: new). */
function migrate (db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue
    db.transaction(() => {
      db.exec(m.sql)
      db.pragma(`user_version = ${m.version}`)
    })()
  }
  return current
}

/** Bytes of the database in use (pages minus free pages). */
export function usedBytes (db: Database.Database): number {
  const pageSize = db.pragma('page_size', { simple: true }) as number
  const pages = db.pragma('page_count', { simple: true }) as number
  const free = db.pragma('freelist_count', { simple: true }) as number
  return (pages - free) * pageSize
}

/**
 * Moves the WAL into the database file and truncates it, as far as readers allow right now: a
 * TRUNCATE checkpoint waits for every reader to reach the newest snapshot, and the busy timeout
 * would hold this thread (the collector's) for as long as a reader worker's query runs.
 */
export function checkpointNow (db: Database.Database, busyTimeoutMs: number): void {
  db.pragma('busy_timeout = 0')
  try {
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`)
  }
}

/** A store's health: its connection answers, its reader workers can open the file, and its (cached) event count. */
export function storeHealth (db: Database.Database, pool: ReaderPool | undefined, count: HealthCount, path: string): { ok: boolean, detail: string } {
  try {
    db.prepare('SELECT 1').get()
  } catch (err) {
    return { ok: false, detail: (err as Error).message }
  }
  const unhealthy = pool?.unhealthy
  if (unhealthy !== undefined) return { ok: false, detail: unhealthy }
  return count.health(path)
}

/**
 * Closes a store's database: its reader workers first, then whatever lease history is pending
 * (what cannot be derived now is derived from the events when the file is next opened).
 */
export async function closeStore (db: Database.Database, pool: ReaderPool | undefined, leases: { stop: () => void, flush: () => void }): Promise<void> {
  if (!db.open) return
  await pool?.close()
  if (!db.open) return
  leases.stop()
  try {
    leases.flush()
  } finally {
    db.close()
  }
}
