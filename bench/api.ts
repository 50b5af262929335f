import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { packageRoot } from '../src/paths.js'
import { fillOnce, ip, mac, shape, STEPS, T0 } from './generate.js'
import { constantRate, oneAtATime } from './load.js'

// bench/api: /api/v1/leases/at and /api/v1/events latency (p50/p99) at a fixed request rate on
// loopback, against `keatrail serve` (its own process, as deployed) on a SQLite store of
// real-shaped Kea events, measured twice per endpoint: open loop at a constant rate (bench/load.ts,
// the figure the target is about) and with autocannon as before (its rate limit sends each
// second's requests in one burst). Bounded: each run lasts SECONDS at RATE requests/s.
// Usage: npm run bench:api [-- EVENTS]   (default 1,000,000; BENCH_SECONDS per endpoint and load, default 20)
//        KEATRAIL_BENCH_DIR=dir: reuse (or keep) the data directory (dir/keatrail.db).
//        BENCH_RATE=n: requests/s (default 200, the issue's load).
//        BENCH_COLD=1: the OS page cache dropped before each endpoint (root: /proc/sys/vm/drop_caches),
//        open loop only: each endpoint's first requests read the file from disk.
//        BENCH_ONLY=0,3: only those endpoints of the list below (by index).
//        BENCH_NO_AUTOCANNON=1: the open loop only.
//        BENCH_CPU_PROF=dir: the server writes a V8 CPU profile there when it exits (where the time goes).
//        BENCH_COST=n: first, n requests per endpoint one at a time: latency without queueing, and
//        the server's CPU per request (/proc; what bounds the rate two cores can serve).

const EVENTS = Number(process.argv[2] ?? 1_000_000)
const RATE = Number(process.env.BENCH_RATE ?? 200)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const COLD = process.env.BENCH_COLD === '1'
const COST = Number(process.env.BENCH_COST ?? 0)

const s = shape(EVENTS)
const keep = process.env.KEATRAIL_BENCH_DIR
const dataDir = keep ?? mkdtempSync(join(tmpdir(), 'kt-bench-api-'))
mkdirSync(dataDir, { recursive: true })
await fillOnce(dataDir, s)
const port = 18_000 + Math.floor(Math.random() * 2000)
const config = join(dataDir, 'bench-api.yaml')
writeFileSync(config, `dataDir: ${dataDir}\napi:\n  port: ${port}\n  rateLimit: { max: 1000000000, windowMs: 60000, timeoutPenaltyMs: 0 }\n`)
// No deadline penalty: an endpoint whose queries time out must not refuse the next endpoint's.
const prof = process.env.BENCH_CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
const server = spawn(process.execPath, [...prof, join(packageRoot(), 'bin', 'keatrail.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
// Read, not just piped: writes to a pipe are synchronous in Node on Linux, so a full pipe (64 KiB
// of refusals logged under load) blocked the server's thread — and its shutdown — for good.
let logLines = 0
let lastLog = ''
server.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
  const lines = chunk.split('\n').filter((l) => l !== '')
  logLines += lines.length
  lastLog = lines[lines.length - 1] ?? lastLog
})
const url = `http://127.0.0.1:${port}`
for (let i = 0; i < 100; i++) {
  if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break
  await new Promise((resolve) => setTimeout(resolve, 200))
}
const ready = await (await fetch(`${url}/readyz`)).json() as { store: string }
process.stdout.write(`bench/api: keatrail serve on ${ready.store}; ${RATE} requests/s for ${SECONDS} s per endpoint and load, loopback\n`)

const span = s.rounds * STEPS * s.stepS * 1000
let x = 4242
const rnd = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
const paths: Record<string, () => string> = {
  '/api/v1/leases/at': () => `/api/v1/leases/at?address=${ip(rnd(s.addresses))}&time=${new Date(T0 + rnd(span)).toISOString()}`,
  '/api/v1/events (mac, 100 newest)': () => `/api/v1/events?q=mac:${mac(rnd(s.addresses), rnd(s.rounds))}&size=100`,
  '/api/v1/events (1 h window, 100 newest)': () => { const t = T0 + rnd(span); return `/api/v1/events?from=${new Date(t).toISOString()}&to=${new Date(t + 3_600_000).toISOString()}&size=100` },
  // Issue 19's other targets: an address range in an hour, a phrase in a day, a day's histogram.
  '/api/v1/events (ip: a /24 in 1 h)': () => { const t = T0 + rnd(span); return `/api/v1/events?q=${encodeURIComponent(`ip:10.${rnd(Math.max(1, s.addresses >> 16))}.${rnd(Math.max(1, Math.min(256, s.addresses >> 8)))}.0/24`)}&from=${new Date(t).toISOString()}&to=${new Date(t + 3_600_000).toISOString()}&size=100` },
  '/api/v1/events (phrase in 24 h)': () => { const t = T0 + rnd(Math.max(1, span - 86_400_000)); return `/api/v1/events?q=${encodeURIComponent('"was released properly"')}&from=${new Date(t).toISOString()}&to=${new Date(t + 86_400_000).toISOString()}&size=100` },
  '/api/v1/stats/histogram (24 h, 1 h buckets)': () => { const t = T0 + rnd(Math.max(1, span - 86_400_000)); return `/api/v1/stats/histogram?from=${new Date(t).toISOString()}&to=${new Date(t + 86_400_000).toISOString()}&interval=1h` }
}
try {
  const only = process.env.BENCH_ONLY?.split(',').map(Number)
  for (const [name, next] of Object.entries(paths).filter((_, i) => only === undefined || only.includes(i))) {
    x = 4242
    if (COST > 0) {
      const c = await oneAtATime(url, COST, next, server.pid as number)
      process.stdout.write(`${name.padEnd(42)} one by one  p50 ${c.p50.toFixed(1)} ms  p99 ${c.p99.toFixed(1)} ms  server CPU ${c.cpuMs.toFixed(1)} ms/request  (${c.ok} ok, ${c.failed} failed)\n`)
      x = 4242
    }
    if (COLD) execFileSync('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'])
    const o = await constantRate(url, RATE, SECONDS, next)
    process.stdout.write(`${name.padEnd(42)} ${COLD ? 'cold, open' : 'open loop '}  ${Math.round(o.achievedRate)} req/s  p50 ${o.p50.toFixed(1)} ms  p99 ${o.p99.toFixed(1)} ms  max ${o.max.toFixed(1)} ms  (${o.ok} ok, ${o.failed} failed${o.failed > 0 ? ` by status: ${JSON.stringify(o.failures)}` : ''})\n`)
    if (COLD || process.env.BENCH_NO_AUTOCANNON === '1') continue
    x = 4242
    // setupRequest, not a precomputed request list: with a list autocannon sent in bursts
    // (p99 ≈ 440 ms even on an empty store).
    const r = await autocannon({ url, connections: 20, overallRate: RATE, duration: SECONDS, requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: next() }) }] })
    process.stdout.write(`${''.padEnd(42)} autocannon  ${Math.round(r.requests.average)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  max ${r.latency.max} ms  (${r['2xx']} ok, ${r.non2xx} non-2xx, ${r.errors} errors; 20 connections)\n`)
  }
} finally {
  server.kill('SIGTERM')
  const t0 = performance.now()
  await new Promise((resolve) => server.on('exit', resolve))
  process.stdout.write(`server exited ${(performance.now() - t0).toFixed(0)} ms after SIGTERM; it logged ${logLines} lines, the last: ${lastLog.slice(0, 300)}\n`)
  if (keep === undefined) rmSync(dataDir, { recursive: true, force: true })
}
