import type { KeaEvent } from '../src/parse/event.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { SqliteStore } from '../src/store/sqlite/store.js'
import type { Store } from '../src/store/types.js'

// Real-shaped Kea 2.2 DHCPv4 INFO logs for the benchmarks: every lease interval is an
// allocation, 8 renewals and a release (10 events), so EVENTS/10 intervals over EVENTS/100
// addresses, each address passing between clients. Deterministic: the same shape, the same lines.

export const T0 = Date.UTC(2026, 9, 1)
export const STEPS = 10 // allocate, 8 renewals, release
const LIFETIME = 4000 // s; a renewal every stepS keeps the lease alive

export interface Shape { addresses: number, rounds: number, stepS: number }

export function shape (events: number): Shape {
  const addresses = Math.max(100, Math.floor(events / 100))
  const rounds = Math.max(1, Math.floor(events / STEPS / addresses))
  return { addresses, rounds, stepS: 3000 }
}

export const ip = (a: number): string => `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}`
export function mac (a: number, r: number): string {
  const m = (a * 7 + r * 100_003) % 2_000_003
  return `02:00:${[(m >> 24) & 255, (m >> 16) & 255, (m >> 8) & 255, m & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`
}
function stamp (ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 23)
}

/** Kea 2.2 INFO lines in time order, 64k lines per chunk. */
async function * logLines (s: Shape): AsyncGenerator<Buffer> {
  const gap = (s.stepS * 1000) / s.addresses
  let out: string[] = []
  let tid = 1
  for (let r = 0; r < s.rounds; r++) {
    for (let step = 0; step < STEPS; step++) {
      for (let a = 0; a < s.addresses; a++) {
        const t = T0 + ((r * STEPS + step) * s.stepS * 1000) + Math.floor(a * gap)
        const m = mac(a, r)
        const label = `[hwtype=1 ${m}], cid=[01:${m}], tid=0x${(tid++).toString(16)}`
        out.push(step === STEPS - 1
          ? `${stamp(t)} INFO  [kea-dhcp4.leases/811.140000000000000] DHCP4_RELEASE ${label}: address ${ip(a)} was released properly.`
          : `${stamp(t)} INFO  [kea-dhcp4.leases/811.140000000000000] DHCP4_LEASE_ALLOC ${label}: lease ${ip(a)} has been allocated for ${LIFETIME} seconds`)
        if (out.length === 65536) { yield Buffer.from(out.join('\n') + '\n'); out = [] }
      }
    }
  }
  if (out.length > 0) yield Buffer.from(out.join('\n') + '\n')
}

export async function fill (store: Store, s: Shape): Promise<{ events: number, seconds: number }> {
  const t0 = process.hrtime.bigint()
  let events = 0
  let pending: KeaEvent[] = []
  // rederivable: parsed as the file source parses (the block store keeps raw records only).
  await parseStream(logLines(s), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench-leases.log', host: 'kea-bench', rederivable: true }, async (batch) => {
    pending.push(...batch)
    if (pending.length >= 10_000) { events += pending.length; await store.write(pending); pending = [] }
  })
  if (pending.length > 0) { events += pending.length; await store.write(pending) }
  return { events, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}


/** dataDir/keatrail.db filled with shape `s`, unless it is there already (KEATRAIL_BENCH_DIR reuse). */
export async function fillOnce (dataDir: string, s: Shape): Promise<void> {
  if (existsSync(join(dataDir, 'keatrail.db'))) return
  const store = new SqliteStore({ path: join(dataDir, 'keatrail.db') })
  const f = await fill(store, s)
  await store.close()
  process.stdout.write(`filled ${f.events.toLocaleString('en')} events in ${f.seconds.toFixed(0)} s\n`)
}
