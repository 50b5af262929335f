import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { observeAll } from '../src/leases/observe.js'
import type { LeaseObservation } from '../src/leases/types.js'
import type { KeaEvent } from '../src/parse/event.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import { MIGRATIONS } from '../src/store/sqlite/migrations.js'
import { SqliteLeases } from '../src/store/sqlite/leases.js'
import type { Store } from '../src/store/types.js'
import { fill, shape } from './generate.js'
import { SqliteLeasesV1 } from './leases-v1.js'
import { keaLogChunks } from './lines.js'

// bench/lease-derive: lease derivation alone, in CPU-µs and bytes on disk per event, before
// schema 10 (bench/leases-v1.ts, one lease_obs row per observation) and now. The observations
// of EVENTS real-shaped events are made once, then handed to each implementation on a fresh
// database (as SqliteStore does: per write batch, derived 20,000 at a time), runs alternating.
// CPU: process.cpuUsage() around enqueue/flush (user + system, commits and fsyncs included).
// Disk: the file's growth, WAL checkpointed.
// Loads: fill (bench/generate.ts: DHCPv4 INFO, every event an allocation, renewal or release),
// lines (bench/lines.ts: the captured Kea 2.2 INFO logs repeated, MACs varied).
// Usage: npm run bench:lease-derive [-- EVENTS [fill|lines] [ROUNDS] [MAX_PENDING]]   (defaults 1,000,000 fill 2 20,000)

const EVENTS = Number(process.argv[2] ?? 1_000_000)
const LOAD = process.argv[3] ?? 'fill'
const ROUNDS = Number(process.argv[4] ?? 2)
// The store's default (leaseDerivation.maxPending); another to see what the batch size buys.
const POLICY = { maxPending: Number(process.argv[5] ?? 20_000), maxDelayMs: 1000 }

/**
 * One write batch: its observations as JSON, and how many events it had (the rowid watermark
 * moves by them). Kept as text until their turn: a million live observation objects made every
 * major GC of the runs mark them, and V8's GC threads are counted in process.cpuUsage().
 */
interface Batch { json: string, n: number, events: number }

function observed (events: readonly KeaEvent[]): Batch {
  const obs = observeAll(events)
  return { json: JSON.stringify(obs), n: obs.length, events: events.length }
}

const batches: Batch[] = []
if (LOAD === 'fill') {
  const sink = { write: async (events: readonly KeaEvent[]) => { batches.push(observed(events)); return { written: events.length, duplicates: 0, deadLettered: 0 } } }
  await fill(sink as unknown as Store, shape(EVENTS))
} else if (LOAD === 'lines') {
  async function * chunks (): AsyncGenerator<Buffer> { yield * keaLogChunks(EVENTS, 'info', { varyMac: true }) }
  let pending: KeaEvent[] = []
  await parseStream(chunks(), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench.log', host: 'kea-bench' }, (b) => {
    pending.push(...b)
    if (pending.length >= 5000) { batches.push(observed(pending)); pending = [] }
  })
  if (pending.length > 0) batches.push(observed(pending))
} else {
  throw new Error(`load ${LOAD}: fill or lines`)
}
const events = batches.reduce((n, b) => n + b.events, 0)
const observations = batches.reduce((n, b) => n + b.n, 0)
process.stdout.write(`bench/lease-derive: ${LOAD}, ${events.toLocaleString('en')} events, ${observations.toLocaleString('en')} lease observations, ` +
  `${batches.length} write batches, derived ${POLICY.maxPending.toLocaleString('en')} at a time\n`)

function open (path: string, schema: number): Database.Database {
  const db = new Database(path)
  // As SqliteStore opens it.
  db.pragma('page_size = 16384')
  db.pragma('auto_vacuum = INCREMENTAL')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('cache_size = -32768')
  db.function('keatrail_ip_hex', { deterministic: true }, (_ip: unknown) => null)
  for (const m of MIGRATIONS) if (m.version <= schema) db.exec(m.sql)
  return db
}

function fileBytes (db: Database.Database, path: string): number {
  db.pragma('wal_checkpoint(TRUNCATE)')
  return statSync(path).size
}

interface Deriver { enqueue: (obs: readonly LeaseObservation[], through: number) => void, flush: () => void }

function run (name: string, schema: number, make: (db: Database.Database) => Deriver): { us: number, bytes: number } {
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-lease-derive-'))
  const path = join(dir, 'k.db')
  const db = open(path, schema)
  const d = make(db)
  const bytes0 = fileBytes(db, path)
  // The garbage of making the observations (and of the run before) is not this run's.
  ;(globalThis as { gc?: () => void }).gc?.()
  let rowid = 0
  let micros = 0
  for (const b of batches) {
    rowid += b.events
    // As from the store's write: observations just made, then handed over (only this is timed).
    const obs = JSON.parse(b.json) as LeaseObservation[]
    const cpu0 = process.cpuUsage()
    d.enqueue(obs, rowid)
    const cpu = process.cpuUsage(cpu0)
    micros += cpu.user + cpu.system
  }
  const cpu0 = process.cpuUsage()
  d.flush()
  const cpu = process.cpuUsage(cpu0)
  micros += cpu.user + cpu.system
  const bytes = fileBytes(db, path) - bytes0
  const intervals = schema >= 10
    ? (db.prepare('SELECT (SELECT count(*) FROM lease_log) + (SELECT count(*) FROM lease_intervals) AS n').get() as { n: number }).n
    : (db.prepare('SELECT count(*) AS n FROM lease_intervals').get() as { n: number }).n
  db.close()
  rmSync(dir, { recursive: true, force: true })
  const us = micros / events
  process.stdout.write(`  ${name.padEnd(34)} ${us.toFixed(2).padStart(6)} CPU-µs/event  ${(bytes / events).toFixed(1).padStart(6)} bytes/event on disk  (${intervals.toLocaleString('en')} intervals)\n`)
  return { us, bytes: bytes / events }
}

const results: Record<string, Array<{ us: number, bytes: number }>> = { before: [], now: [] }
// KEATRAIL_BENCH_ONLY=now (or before) runs one side only (profiling).
const only = process.env.KEATRAIL_BENCH_ONLY
for (let r = 0; r < ROUNDS; r++) {
  if (only !== 'now') results.before?.push(run('before (lease_obs row per event)', 9, (db) => new SqliteLeasesV1(db, POLICY)))
  if (only !== 'before') results.now?.push(run('now (row per interval)', 10, (db) => {
    const l = new SqliteLeases(db, POLICY)
    return { enqueue: (obs, through) => { l.enqueue(obs, through) }, flush: () => { l.flush(); l.stop() } }
  }))
}
for (const [name, rs] of Object.entries(results)) {
  if (rs.length === 0) continue
  const best = Math.min(...rs.map((x) => x.us))
  process.stdout.write(`best of ${ROUNDS}, ${name.padEnd(7)} ${best.toFixed(2).padStart(6)} CPU-µs/event  ${(rs[0]?.bytes ?? 0).toFixed(1).padStart(6)} bytes/event\n`)
}
