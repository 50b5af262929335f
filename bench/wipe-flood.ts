import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { parseAddressOrPrefix } from '../src/leases/address.js'
import type { LeaseObservation } from '../src/leases/types.js'
import type { LeaseWipe } from '../src/leases/wipes.js'
import { MIGRATIONS } from '../src/store/sqlite/migrations.js'
import { SqliteLeases } from '../src/store/sqlite/leases.js'

// bench/wipe-flood: what a flood of lease-wipe lines costs lease derivation (a syslog peer can
// send any line: a forged `DHCPSRV_MEMFILE_WIPE_LEASES4` reaches every open lease of its server).
// KEYS leases of one server are allocated (one day's lifetime), then WIPES wipe lines follow in
// batches of BATCH (one derivation each, as the store hands them over), newer than every lease,
// each a second after the last: of one subnet ('same'), or each of another subnet ('distinct').
// Then a late line of one of the leases arrives, from before its allocation: the key is derived
// again from its start, with every wipe since. Prints ms per wipe, the slowest batch, the late
// line's ms. Run it on two builds alternating (this VM is noisy). Usage: npx tsx bench/wipe-flood.ts [KEYS] [WIPES] [BATCH]
const KEYS = Number(process.argv[2] ?? 50_000)
const WIPES = Number(process.argv[3] ?? 2_000)
const BATCH = Number(process.argv[4] ?? 500)
const T0 = Date.UTC(2026, 10, 24)

function open (path: string): Database.Database {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.function('keatrail_ip_hex', { deterministic: true }, (_ip: unknown) => null)
  for (const m of MIGRATIONS) db.exec(m.sql)
  return db
}

function allocation (i: number, ts: number, id: string): LeaseObservation {
  const lease = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  const r = parseAddressOrPrefix(lease)
  const hw = `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
  return { event_id: id, ts, seq: id, key: `kea-a|V4|${lease}`, scope: 'kea-a', type: 'V4', lease, lo: r.lo, hi: r.hi, action: 'allocate', lifetime: 86400, hwaddr: hw }
}

function run (mode: 'same' | 'distinct'): void {
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-wipe-'))
  const db = open(join(dir, 'k.db'))
  const l = new SqliteLeases(db, { maxPending: 1_000_000, maxDelayMs: 60_000 })
  l.wipesStored = () => []
  let n = 0
  const id = (): string => `bench-${(n++).toString(16).padStart(13, '0')}`
  const obs: LeaseObservation[] = []
  for (let i = 0; i < KEYS; i++) obs.push(allocation(i, T0 + i, id()))
  l.enqueue(obs, n)
  l.flush()
  let ts = T0 + KEYS + 1000
  const t0 = performance.now()
  let worst = 0
  for (let done = 0; done < WIPES; done += BATCH) {
    const wipes: LeaseWipe[] = []
    for (let j = 0; j < BATCH && done + j < WIPES; j++) {
      ts += 1000
      const eid = id()
      wipes.push({ scope: 'kea-a', family: 4, subnet_id: mode === 'same' ? 7 : 1000 + done + j, ts, seq: eid, event_id: eid })
    }
    const b0 = performance.now()
    l.enqueue([], n, wipes)
    l.flush()
    worst = Math.max(worst, performance.now() - b0)
  }
  const flood = performance.now() - t0
  const r0 = performance.now()
  l.enqueue([{ ...allocation(1, T0 - 1000, id()), action: 'renew' }], n)
  l.flush()
  const renew = performance.now() - r0
  l.stop()
  db.close()
  rmSync(dir, { recursive: true, force: true })
  process.stdout.write(`  ${mode.padEnd(8)} ${(flood / WIPES).toFixed(3).padStart(9)} ms/wipe  worst batch ${worst.toFixed(0).padStart(6)} ms  late line ${renew.toFixed(1).padStart(7)} ms\n`)
}

process.stdout.write(`bench/wipe-flood: ${KEYS.toLocaleString('en')} open leases of one server, ${WIPES.toLocaleString('en')} wipe lines in batches of ${BATCH}\n`)
for (let r = 0; r < 2; r++) { run('same'); run('distinct') }
