import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fill, shape } from '../../bench/generate.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { metrics, pipelineCounter, sourceCounter, startKeatrail, until, writeConfig, type Keatrail } from '../chaos/harness.js'
import { freePort } from '../helpers/outage.js'

// Issue 17: on a 200k-event store a 20-clause CIDR query took 7.1 s, /healthz waited 7.0 s
// behind it, and 13,892 of 17,800 UDP datagrams sent meanwhile were dropped: better-sqlite3 is
// synchronous and the API, the sources and the pipeline share one event loop. A real
// `keatrail run` on 150k events, pathological queries fired at its API while /healthz is polled
// and a UDP burst arrives: every /healthz is answered, the queries are answered or refused with
// codes, and the datagrams are stored.

const EVENTS = 150_000
const DATAGRAMS = 4000
const RATE = 2000 // datagrams/s, as in the report

const dir = mkdtempSync(join(tmpdir(), 'kt-query-stall-'))
let kt: Keatrail | undefined
afterAll(async () => {
  if (kt !== undefined && kt.proc.exitCode === null) { kt.proc.kill('SIGKILL'); await kt.exited }
  rmSync(dir, { recursive: true, force: true })
})

const q = (s: string): string => encodeURIComponent(s)
const cidr20 = Array.from({ length: 20 }, (_, i) => `ip:10.0.${i}.0/24`).join(' OR ')
const every32 = Array.from({ length: 32 }, () => 'ip:0.0.0.0/0').join(' OR ')

interface Probe { name: string, path: string, ok: (status: number, code: string | undefined) => boolean }
const answeredOr503 = (status: number, code: string | undefined): boolean =>
  status === 200 || (status === 503 && (code === 'KEATRAIL_ERR_QUERY_TIMEOUT' || code === 'KEATRAIL_ERR_QUERY_BUSY'))
const refused = (want: string) => (status: number, code: string | undefined): boolean => status === 400 && code === want
const PATHOLOGICAL: Probe[] = [
  { name: 'the 20-clause CIDR query of the report', path: `/api/v1/events?q=${q(cidr20)}&size=100`, ok: answeredOr503 },
  { name: '32 ranges over every address', path: `/api/v1/events?q=${q(every32)}&size=1000`, ok: answeredOr503 },
  { name: 'top addresses of 32 ranges', path: `/api/v1/stats/top?field=ip&size=100&q=${q(every32)}`, ok: answeredOr503 },
  { name: 'count-heavy histogram of 32 ranges', path: `/api/v1/stats/histogram?interval=1h&q=${q(every32)}`, ok: answeredOr503 },
  { name: '1,000 chained NOTs', path: `/api/v1/events?q=${q('NOT '.repeat(1000) + 'lease')}`, ok: refused('KEATRAIL_ERR_QUERY_TOO_COMPLEX') },
  { name: '33 clauses', path: `/api/v1/events?q=${q(Array.from({ length: 33 }, (_, i) => `ip:10.${i}.0.0/16`).join(' OR '))}`, ok: refused('KEATRAIL_ERR_QUERY_TOO_COMPLEX') },
  { name: 'a 4,000-character phrase', path: `/api/v1/events?q=${q(`"${'lease '.repeat(666)}"`)}`, ok: refused('KEATRAIL_ERR_QUERY_TOO_COMPLEX') },
  { name: 'a NUL byte in a phrase', path: `/api/v1/events?q=${q('"lease\u0000allocated"')}`, ok: refused('KEATRAIL_ERR_QUERY_SYNTAX') },
  { name: 'interval=999999999d', path: '/api/v1/stats/histogram?interval=999999999d', ok: (status, code) => status >= 400 && status < 500 && code?.startsWith('KEATRAIL_ERR_') === true }
]

describe('security: no read request stalls keatrail run', () => {
  it('answers /healthz, refuses or answers pathological queries with codes, and stores every datagram of a burst meanwhile', async () => {
    // The store, before start: real-shaped Kea events (bench/generate.ts).
    const seed = new SqliteStore({ path: join(dir, 'data', 'keatrail.db'), synchronous: 'normal' })
    await fill(seed, shape(EVENTS))
    await seed.close()

    const port = await freePort()
    kt = startKeatrail(writeConfig(dir, {
      sources: [{ type: 'syslog', name: 'burst', udp: { host: '127.0.0.1', port }, timeZone: 'UTC' }],
      api: { port: 0, rateLimit: { max: 1_000_000, windowMs: 60_000 } }
    }))
    const api = await kt.apiUrl()

    let attacking = true
    // /healthz, one request at a time, for as long as the attack lasts.
    const health: Array<{ ms: number, status: number }> = []
    const polling = (async () => {
      while (attacking && health.length < 20_000) {
        const t0 = performance.now()
        const status = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(30_000) }).then(async (r) => { await r.arrayBuffer(); return r.status }, () => 0)
        health.push({ ms: performance.now() - t0, status })
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()

    // The burst: DATAGRAMS at RATE, paced by a timer, while the queries run.
    const sock = createSocket('udp4')
    let sent = 0
    const sending = (async () => {
      const perTick = RATE / 100
      for (let tick = 0; sent < DATAGRAMS; tick++) {
        for (let k = 0; k < perTick && sent < DATAGRAMS; k++, sent++) {
          sock.send(`<134>Nov 26 12:00:00 kea kea-dhcp4: INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x${sent.toString(16)}: lease 192.0.2.10 has been allocated for 4000 seconds`, port, '127.0.0.1')
        }
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()

    // Each pathological request twice, two at a time: bounded in count.
    const results: Array<{ name: string, status: number, code: string | undefined, ms: number }> = []
    const work = [...PATHOLOGICAL, ...PATHOLOGICAL]
    const attackers = Array.from({ length: 2 }, async () => {
      for (let p = work.shift(); p !== undefined; p = work.shift()) {
        const t0 = performance.now()
        const res = await fetch(`${api}${p.path}`, { signal: AbortSignal.timeout(60_000) })
        const body = await res.json() as { code?: string }
        results.push({ name: p.name, status: res.status, code: body.code, ms: performance.now() - t0 })
      }
    })
    try {
      await Promise.all([...attackers, sending])
    } finally {
      attacking = false
      await polling
      sock.close()
    }

    // Every datagram stored (none dropped, kernel or spill), once the pipeline is quiet.
    const settled = await until(async () => {
      const m = await metrics(api)
      return sourceCounter(m, 'burst', 'parsed') + sourceCounter(m, 'burst', 'dropped') >= DATAGRAMS && pipelineCounter(m, 'stored') >= sourceCounter(m, 'burst', 'parsed')
    }, 60_000, 250)
    const m = await metrics(api)
    const parsed = sourceCounter(m, 'burst', 'parsed')
    const dropped = sourceCounter(m, 'burst', 'dropped')
    const stored = pipelineCounter(m, 'stored')

    const ms = health.map((h) => h.ms).sort((a, b) => a - b)
    const pct = (p: number): number => ms[Math.min(ms.length - 1, Math.floor(ms.length * p))] ?? NaN
    process.stdout.write(`query-stall: ${EVENTS} events; /healthz ${health.length} polls, p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms, max ${(ms[ms.length - 1] ?? NaN).toFixed(1)} ms\n`)
    for (const r of results) process.stdout.write(`query-stall:   ${r.status} ${r.code ?? ''} ${r.ms.toFixed(0)} ms  ${r.name}\n`)
    process.stdout.write(`query-stall: UDP burst ${sent} sent at ${RATE}/s, ${parsed} parsed, ${stored} stored, ${dropped} dropped\n`)

    expect(health.length).toBeGreaterThan(0)
    expect(health.filter((h) => h.status !== 200), 'every /healthz answered 200').toEqual([])
    for (const r of results) {
      const probe = PATHOLOGICAL.find((p) => p.name === r.name) as Probe
      expect(probe.ok(r.status, r.code), `${r.name}: ${r.status} ${r.code ?? ''}`).toBe(true)
    }
    expect(results).toHaveLength(PATHOLOGICAL.length * 2)
    expect(settled).toBe(true)
    // Every datagram stored or counted as dropped; and (nearly) none dropped: before issue 17,
    // 93 % of this burst was (3,724 of 4,000). Not a strict 0: the collector's own commits
    // (fsync, lease derivation: 50-80 ms per 500 events on a loaded 2-core machine) still run on
    // its thread; 0 dropped in 3 runs here (120 before readers ran at nice 10), 0.4 % in
    // bench/query-stall's longer burst.
    expect(parsed + dropped).toBe(DATAGRAMS)
    expect(stored).toBe(parsed)
    expect(dropped, 'datagrams dropped during the queries').toBeLessThanOrEqual(DATAGRAMS * 0.05)

    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
  }, 180_000)
})
