import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packageRoot } from '../src/paths.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import { fill, shape } from './generate.js'
import { constantRate, discardedEvents } from './load.js'

// bench/query-stall (issue 17): /healthz latency of `keatrail run` (its own process, as
// deployed) on a SQLite store of real-shaped events, first idle, then while two clients send
// pathological queries back to back and a UDP syslog source receives 2,000 datagrams/s. Prints
// p50/p99/max of /healthz (open loop, 50/s), each query's status and time, and the datagrams
// dropped. Bounded: SECONDS per phase.
// Usage: npm run build && node dist/bench/query-stall.js [EVENTS]   (default 200,000)
//        KEATRAIL_BENCH_DIR=dir: reuse (or keep) the data directory (dir/keatrail.db).
//        KEATRAIL_BENCH_UDP=datagrams/s (default 2000; 0: none).

const EVENTS = Number(process.argv[2] ?? 200_000)
const SECONDS = 15
const HEALTH_RATE = 50
/** KEATRAIL_BENCH_UDP=0: no datagrams (then nothing is written meanwhile: reads alone). */
const UDP_RATE = Number(process.env.KEATRAIL_BENCH_UDP ?? 2000)

const keep = process.env.KEATRAIL_BENCH_DIR
const dataDir = keep ?? mkdtempSync(join(tmpdir(), 'kt-bench-stall-'))
mkdirSync(dataDir, { recursive: true })
if (!existsSync(join(dataDir, 'keatrail.db'))) {
  const store = new SqliteStore({ path: join(dataDir, 'keatrail.db'), synchronous: 'normal' })
  const f = await fill(store, shape(EVENTS))
  await store.close()
  process.stdout.write(`filled ${f.events.toLocaleString('en')} events in ${f.seconds.toFixed(0)} s\n`)
}
const apiPort = 18_000 + Math.floor(Math.random() * 2000)
const udpPort = apiPort + 2000
const config = join(dataDir, 'bench-stall.yaml')
writeFileSync(config, [
  `dataDir: ${dataDir}`,
  'api:',
  `  port: ${apiPort}`,
  '  rateLimit: { max: 1000000000, windowMs: 60000 }',
  'sources:',
  '  - { type: syslog, name: burst, timeZone: UTC, udp: { host: 127.0.0.1, port: ' + String(udpPort) + ' } }',
  ''
].join('\n'))
const proc = spawn(process.execPath, ['--max-old-space-size=256', join(packageRoot(), 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
proc.stderr?.resume()
const url = `http://127.0.0.1:${apiPort}`
for (let i = 0; i < 150; i++) {
  if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break
  await new Promise((resolve) => setTimeout(resolve, 200))
}

const q = (s: string): string => encodeURIComponent(s)
const every32 = Array.from({ length: 32 }, () => 'ip:0.0.0.0/0').join(' OR ')
const QUERIES: Array<[string, string]> = [
  ['20-clause CIDR (the report\'s)', `/api/v1/events?q=${q(Array.from({ length: 20 }, (_, i) => `ip:10.0.${i}.0/24`).join(' OR '))}`],
  ['32 ranges over every address', `/api/v1/events?size=1000&q=${q(every32)}`],
  ['top addresses of 32 ranges', `/api/v1/stats/top?field=ip&size=100&q=${q(every32)}`],
  ['1,000 chained NOTs', `/api/v1/events?q=${q('NOT '.repeat(1000) + 'lease')}`],
  ['4,000-character phrase', `/api/v1/events?q=${q(`"${'lease '.repeat(666)}"`)}`],
  ['interval=999999999d', '/api/v1/stats/histogram?interval=999999999d']
]

const dropped = async (): Promise<number> => discardedEvents(await (await fetch(`${url}/metrics`)).text(), 'burst')
/** keatrail's own event-loop delay since the previous scrape (prom-client resets it on each), ms. */
const loopLag = async (): Promise<string> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const v = (name: string): string => (Number(new RegExp(`^keatrail_nodejs_eventloop_lag_${name}_seconds (\\S+)`, 'm').exec(text)?.[1] ?? NaN) * 1000).toFixed(1)
  return `p50 ${v('p50')} ms  p99 ${v('p99')} ms  max ${v('max')} ms`
}

try {
  await loopLag()
  const idle = await constantRate(url, HEALTH_RATE, SECONDS, () => '/healthz')
  const idleLag = await loopLag()
  process.stdout.write(`bench/query-stall: keatrail run, ${EVENTS.toLocaleString('en')} events; /healthz at ${HEALTH_RATE}/s for ${SECONDS} s, loopback\n`)
  process.stdout.write(`/healthz idle                       p50 ${idle.p50.toFixed(1)} ms  p99 ${idle.p99.toFixed(1)} ms  max ${idle.max.toFixed(1)} ms  (${idle.ok} ok, ${idle.failed} failed)\n`)
  process.stdout.write(`  keatrail's event-loop delay        ${idleLag}\n`)

  let attacking = true
  const answers = new Map<string, string[]>()
  const attackers = Array.from({ length: 2 }, async (_, k) => {
    for (let i = k; attacking && i < 10_000; i++) {
      const [name, path] = QUERIES[i % QUERIES.length] as [string, string]
      const t0 = performance.now()
      const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(60_000) }).catch(() => undefined)
      const code = res === undefined ? 'no answer' : `${res.status} ${((await res.json()) as { code?: string }).code ?? ''}`.trim()
      answers.set(name, [...(answers.get(name) ?? []), `${code} ${(performance.now() - t0).toFixed(0)} ms`])
    }
  })
  const sock = createSocket('udp4')
  let sent = 0
  const before = await dropped()
  await loopLag()
  const sending = (async () => {
    const end = performance.now() + SECONDS * 1000
    while (UDP_RATE > 0 && performance.now() < end) {
      for (let k = 0; k < UDP_RATE / 100; k++, sent++) {
        sock.send(`<134>Nov 26 12:00:00 kea kea-dhcp4: INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x${sent.toString(16)}: lease 192.0.2.10 has been allocated for 4000 seconds`, udpPort, '127.0.0.1')
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  const busy = await constantRate(url, HEALTH_RATE, SECONDS, () => '/healthz')
  const busyLag = await loopLag()
  attacking = false
  await Promise.all([...attackers, sending])
  sock.close()
  process.stdout.write(`/healthz under pathological queries p50 ${busy.p50.toFixed(1)} ms  p99 ${busy.p99.toFixed(1)} ms  max ${busy.max.toFixed(1)} ms  (${busy.ok} ok, ${busy.failed} failed)\n`)
  process.stdout.write(`  keatrail's event-loop delay        ${busyLag}\n`)
  for (const [name, list] of answers) process.stdout.write(`  ${name.padEnd(32)} ${list.join(', ')}\n`)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  process.stdout.write(`UDP: ${sent} datagrams at ${UDP_RATE}/s meanwhile, ${(await dropped()) - before} dropped\n`)
} finally {
  proc.kill('SIGTERM')
  await new Promise((resolve) => proc.on('exit', resolve))
  if (keep === undefined) rmSync(dataDir, { recursive: true, force: true })
}
