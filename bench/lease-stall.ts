import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import type { KeaEvent } from '../src/parse/event.js'
import { SqliteStore } from '../src/store/sqlite/store.js'

// bench/lease-stall: how long one lease history read holds the thread that collects and
// answers HTTP. One client (a MAC) held INTERVALS addresses, one after another; its whole
// history is read with the store's reads on its own connection (readers.workers 0: the layout
// before lease reads ran on the reader workers) and on two reader workers, alternating, three
// rounds. Prints the read's time and the longest gap between 1 ms timer ticks of the main thread.
// Usage: npm run bench:lease-stall [-- INTERVALS]   (default 20,000)

const INTERVALS = Number(process.argv[2] ?? 20_000)
const MAC = '02:00:00:00:00:01'

function lines (): Buffer {
  const out: string[] = []
  const t0 = Date.UTC(2026, 9, 1)
  for (let i = 0; i < INTERVALS; i++) {
    const ts = new Date(t0 + i * 10_000).toISOString().replace('T', ' ').slice(0, 23)
    out.push(`${ts} INFO  [kea-dhcp4.leases/811.140000000000000] DHCP4_LEASE_ALLOC [hwtype=1 ${MAC}], cid=[01:${MAC}], tid=0x${i.toString(16)}: lease 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} has been allocated for 4000 seconds`)
  }
  return Buffer.from(out.join('\n') + '\n')
}

const dir = mkdtempSync(join(tmpdir(), 'kt-bench-lease-stall-'))
try {
  const path = join(dir, 'keatrail.db')
  const events: KeaEvent[] = []
  async function * chunks (): AsyncGenerator<Buffer> { yield lines() }
  await parseStream(chunks(), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'kea.log', sourceId: 'bench', rederivable: true, host: 'kea-a' }, (b) => { events.push(...b) })
  const filler = new SqliteStore({ path, readers: { workers: 0 } })
  await filler.write(events)
  await filler.close()
  process.stdout.write(`bench/lease-stall: one client's history of ${INTERVALS.toLocaleString('en')} intervals (GET /api/v1/leases?mac=…)\n`)
  for (let round = 0; round < 3; round++) {
    for (const workers of [0, 2]) {
      const store = new SqliteStore({ path, readers: { workers } })
      try {
        await store.count({}) // a worker up, if any
        let last = performance.now()
        let held = 0
        const timer = setInterval(() => { const now = performance.now(); held = Math.max(held, now - last); last = now }, 1)
        await new Promise((resolve) => setTimeout(resolve, 20))
        const t0 = performance.now()
        const n = (await store.leases.intervals({ mac: MAC })).length
        const ms = performance.now() - t0
        await new Promise((resolve) => setTimeout(resolve, 20))
        clearInterval(timer)
        if (n !== INTERVALS) throw new Error(`read ${n} intervals of ${INTERVALS}`)
        process.stdout.write(`readers.workers ${workers}: read in ${ms.toFixed(0)} ms; the main thread held for at most ${held.toFixed(0)} ms\n`)
      } finally {
        await store.close()
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
