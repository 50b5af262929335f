import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'

export interface RateResult { sent: number, ok: number, failed: number, p50: number, p99: number, max: number, achievedRate: number, /** Failed requests by HTTP status (0: no response). */ failures: Record<number, number> }

/**
 * Open-loop HTTP load at a constant rate, as wrk2 does: request i is due at start + i/rate
 * whether or not earlier ones have answered, and its latency runs from when it was due, so a
 * stalled server is charged for every request it delayed (no coordinated omission).
 * autocannon's `overallRate` is not this: each connection sends its share of a second back to
 * back as soon as the second starts and then idles, so 20 connections make bursts of 200.
 * Bounded: `seconds` × `rate` requests (fewer when `stop` aborts first), at most `maxSockets` connections.
 */
export async function constantRate (baseUrl: string, rate: number, seconds: number, nextPath: () => string, maxSockets = 64, stop?: AbortSignal): Promise<RateResult> {
  const agent = new Agent({ keepAlive: true, maxSockets })
  let total = Math.round(rate * seconds)
  const latencies: number[] = []
  let failed = 0
  const failures: Record<number, number> = {}
  const fail = (status: number): void => { failed++; failures[status] = (failures[status] ?? 0) + 1 }
  const pending: Array<Promise<void>> = []
  const start = performance.now()
  const send = (due: number, path: string): Promise<void> => new Promise((resolve) => {
    const req = request(`${baseUrl}${path}`, { agent }, (res) => {
      res.resume()
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(performance.now() - due)
        else fail(res.statusCode ?? 0)
        resolve()
      })
    })
    req.on('error', () => { fail(0); resolve() })
    req.end()
  })
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    // `stop`: the load ends early (bench/e2e: when ingestion is done); what was sent is counted.
    if (stop?.aborted === true) { total = i; break }
    pending.push(send(due, nextPath()))
  }
  await Promise.all(pending)
  const elapsed = (performance.now() - start) / 1000
  agent.destroy()
  latencies.sort((a, b) => a - b)
  const at = (q: number): number => latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number
  return { sent: total, ok: latencies.length, failed, p50: at(0.5), p99: at(0.99), max: at(1), achievedRate: total / elapsed, failures }
}

/**
 * Messages `source` dropped, from a /metrics text (keatrail_source_discarded_events_total,
 * src/api/metrics.ts); NaN when the text has no such line.
 */
export function discardedEvents (metricsText: string, source: string): number {
  const label = `source="${source.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('keatrail_source_discarded_events_total{')) continue
    const m = /^[^{]+\{([^}]*)\} (\S+)$/.exec(line)
    if (m?.[1]?.split(',').includes(label) === true) return Number(m[2])
  }
  return NaN
}

/** CPU seconds (user + system, all threads) process `pid` has used, from /proc. */
export function procCpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // utime, stime in USER_HZ (100 on Linux)
}

/**
 * `count` requests one at a time (closed loop, one connection): each one's latency without
 * queueing, and the CPU the server at `pid` spent per request (what a request costs: a core
 * serves 1000 / cpuMs of them a second).
 */
export async function oneAtATime (baseUrl: string, count: number, nextPath: () => string, pid: number): Promise<{ ok: number, failed: number, p50: number, p99: number, cpuMs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const times: number[] = []
  let failed = 0
  const cpu0 = procCpuSeconds(pid)
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    const status = await new Promise<number>((resolve) => {
      const req = request(baseUrl + nextPath(), { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
      req.on('error', () => resolve(0))
      req.end()
    })
    if (status === 200) times.push(performance.now() - t0)
    else failed++
  }
  const cpuMs = (procCpuSeconds(pid) - cpu0) * 1000 / count
  agent.destroy()
  times.sort((a, b) => a - b)
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN
  return { ok: times.length, failed, p50: at(0.5), p99: at(0.99), cpuMs }
}
