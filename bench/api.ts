import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { buildApp } from '../src/api/app.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import { fill, ip, mac, shape, STEPS, T0 } from './generate.js'

// bench/api: /api/v1/leases/at and /api/v1/events latency (p50/p99) under a fixed request rate
// on loopback, against a SQLite store of real-shaped Kea events. Bounded: each run lasts
// SECONDS at RATE requests/s.
// Usage: npm run bench:api [-- EVENTS]   (default 1,000,000)
//        KEATRAIL_BENCH_DB=path: reuse (or keep) a database filled by bench/leases or this bench.

const EVENTS = Number(process.argv[2] ?? 1_000_000)
const RATE = 200
const SECONDS = 20

const s = shape(EVENTS)
const keep = process.env.KEATRAIL_BENCH_DB
const dir = mkdtempSync(join(tmpdir(), 'kt-bench-api-'))
const path = keep ?? join(dir, 'keatrail.db')
const reuse = keep !== undefined && existsSync(keep)
const store = new SqliteStore({ path })
if (!reuse) {
  const f = await fill(store, s)
  process.stdout.write(`filled ${f.events.toLocaleString('en')} events in ${f.seconds.toFixed(0)} s\n`)
}
const count = await store.count()
const app = await buildApp({ store, api: { rateLimit: { max: 1_000_000_000, windowMs: 60_000 } } })
const url = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`bench/api: ${count.toLocaleString('en')} events in SQLite, ${RATE} requests/s for ${SECONDS} s per endpoint, loopback\n`)

const span = s.rounds * STEPS * s.stepS * 1000
let x = 4242
const rnd = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
const paths: Record<string, () => string> = {
  '/api/v1/leases/at': () => `/api/v1/leases/at?address=${ip(rnd(s.addresses))}&time=${new Date(T0 + rnd(span)).toISOString()}`,
  '/api/v1/events (mac, 100 newest)': () => `/api/v1/events?q=mac:${mac(rnd(s.addresses), rnd(s.rounds))}&size=100`,
  '/api/v1/events (1 h window, 100 newest)': () => { const t = T0 + rnd(span); return `/api/v1/events?from=${new Date(t).toISOString()}&to=${new Date(t + 3_600_000).toISOString()}&size=100` }
}
for (const [name, next] of Object.entries(paths)) {
  const r = await autocannon({
    url, connections: 20, overallRate: RATE, duration: SECONDS,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: next() }) }]
  })
  const ok = r['2xx']
  process.stdout.write(`${name.padEnd(42)} ${Math.round(r.requests.average)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  max ${r.latency.max} ms  (${ok} ok, ${r.non2xx} non-2xx, ${r.errors} errors)\n`)
}
await app.close()
await store.close()
rmSync(dir, { recursive: true, force: true })
