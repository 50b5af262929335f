import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { KeaEvent } from '../src/parse/event.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import { parseAddressOrPrefix } from '../src/leases/address.js'
import { MIGRATIONS } from '../src/store/sqlite/migrations.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import { isoToMicros } from '../src/store/time.js'
import { keaLogChunks } from './lines.js'

// bench/sqlite: where the SQLite store's write time goes, on the same real-shaped events as
// bench/store. Part 1 runs the events' own statements alone (values extracted beforehand, so
// only SQLite is timed), adding one structure at a time, with the bytes each variant wrote. Part 2 runs store.write with lease
// derivation after every write and deferred (the default), and reads the bytes the process
// wrote from /proc/self/io (Linux): each commit rewrites every page it touched.
// Usage: npm run bench:sqlite [-- EVENTS]   (default 300,000)

const EVENTS = Number(process.argv[2] ?? 300_000)
const BATCH = 5_000
const SECONDARY = ['code', 'action', 'level', 'logger', 'host', 'mac', 'hwaddr', 'client_id', 'duid']

function writtenBytes (): number {
  const m = /write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))
  return m === null ? Number.NaN : Number(m[1])
}

const events: KeaEvent[] = []
async function * chunks (): AsyncGenerator<Buffer> { yield * keaLogChunks(EVENTS, 'info', { varyMac: true }) }
await parseStream(chunks(), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench.log' }, (b) => { events.push(...b) })
process.stdout.write(`bench/sqlite: ${events.length.toLocaleString('en')} real-shaped Kea events, transactions of ${BATCH.toLocaleString('en')}\n`)

// Part 1: the statements of one event, as src/store/sqlite/store.ts binds them.
const rows = events.map((e) => [e.event.id, isoToMicros(e['@timestamp']), e.event.dataset, e.event.code ?? null, e.event.action ?? null, e.log.level ?? null,
  e.log.logger ?? null, e.host?.name ?? null, e.kea.parse.status, e.client?.mac ?? null, e.kea.hwaddr ?? null, e.kea.client_id ?? null, e.kea.duid ?? null,
  e.client?.ip ?? null, e.kea.subnet_id ?? null, e.kea.source_id ?? null, e.event.kind, e.kea.transaction_id ?? null, e.kea.hostname ?? null, e.kea.iaid ?? null,
  e.client?.ip === undefined ? null : parseAddressOrPrefix(e.client.ip).lo])
// Each related IP with the fixed-width hex form it is stored with (schema 9).
const ips = events.map((e) => (e.related?.ip ?? []).map((a) => [a, parseAddressOrPrefix(a).lo] as const))
const variants = [
  ['row (rowid, event id, time index)', { indexes: false, fts: false, ips: false }],
  ['+ 9 secondary indexes', { indexes: true, fts: false, ips: false }],
  ['+ full text (FTS5)', { indexes: true, fts: true, ips: false }],
  ['+ related IPs (event_ips): the store', { indexes: true, fts: true, ips: true }]
] as const
for (const [label, v] of variants) {
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-sqlite-'))
  const db = new Database(join(dir, 'k.db'))
  db.pragma('page_size = 16384')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('cache_size = -32768')
  // Schema 9's backfill calls the function the store registers (no rows here to backfill).
  db.function('keatrail_ip_hex', { deterministic: true }, (_ip: unknown) => null)
  for (const m of MIGRATIONS) db.exec(m.sql)
  if (!v.indexes) for (const i of SECONDARY) db.exec(`DROP INDEX events_${i}`)
  const ins = db.prepare(`INSERT OR IGNORE INTO events (id, ts, dataset, code, action, level, logger, host, status, mac, hwaddr, client_id, duid, client_ip, subnet_id, source_id, message, doc, kind, tid, hostname, iaid, client_hex)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, ?, ?)`)
  const fts = db.prepare('INSERT INTO events_fts (rowid, message) VALUES (?, ?)')
  const ip = db.prepare('INSERT OR IGNORE INTO event_ips (hex, ts, event, ip) VALUES (?, ?, ?, ?)')
  const tx = db.transaction((from: number, to: number) => {
    for (let k = from; k < to; k++) {
      const row = rows[k] as unknown[]
      const id = ins.run(row).lastInsertRowid
      const e = events[k] as KeaEvent
      if (v.fts) fts.run(id, e.message)
      if (v.ips) for (const [a, hex] of ips[k] ?? []) ip.run(hex, row[1], id, a)
    }
  })
  const bytes0 = writtenBytes()
  const t0 = performance.now()
  for (let i = 0; i < rows.length; i += BATCH) tx(i, Math.min(rows.length, i + BATCH))
  const us = (performance.now() - t0) * 1000 / rows.length
  db.close()
  // Deterministic where the timing is not: each commit rewrites every page it touched, and the
  // indexes keyed by MAC, client, IP or word touch pages all over their B-trees.
  const kib = (writtenBytes() - bytes0) / rows.length / 1024
  rmSync(dir, { recursive: true, force: true })
  process.stdout.write(`  ${label.padEnd(40)} ${us.toFixed(1).padStart(6)} µs/event  (${Math.round(1e6 / us).toLocaleString('en').padStart(9)} events/s)  ${kib.toFixed(2).padStart(5)} KiB written per event\n`)
}

// Part 2: the whole store.write (events, documents, lease history), commits included.
for (const [label, maxPending] of [['lease derivation in every write', 1], ['lease derivation deferred (default)', undefined]] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-sqlite-'))
  const store = new SqliteStore({ path: join(dir, 'keatrail.db'), ...(maxPending === undefined ? {} : { leaseDerivation: { maxPending, maxDelayMs: 0 } }) })
  const bytes0 = writtenBytes()
  const t0 = performance.now()
  for (let i = 0; i < events.length; i += BATCH) await store.write(events.slice(i, i + BATCH))
  await store.close()
  const seconds = (performance.now() - t0) / 1000
  const perEvent = (writtenBytes() - bytes0) / events.length
  rmSync(dir, { recursive: true, force: true })
  process.stdout.write(`  store.write, ${label.padEnd(36)} ${Math.round(events.length / seconds).toLocaleString('en').padStart(9)} events/s  ${(perEvent / 1024).toFixed(1).padStart(5)} KiB written per event\n`)
}
