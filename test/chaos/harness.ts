import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { stringify } from 'yaml'
import { ROOT } from '../helpers/fixtures.js'
import { COUNT_STORED_SQL, storedEvents } from '../helpers/stored.js'

// The chaos suite runs `keatrail run` as a real process and hurts it from outside. Short by
// default (CI); KEATRAIL_SOAK=1 (npm run test:soak) repeats each fault for longer.

export const SOAK = process.env.KEATRAIL_SOAK === '1'

export interface LogLine { level: string, code?: string, msg: string, [k: string]: unknown }

export interface Keatrail {
  proc: ChildProcess
  logs: () => LogLine[]
  exited: Promise<number | null>
  /** The API's base URL, once it listens. */
  apiUrl: () => Promise<string>
}

export function writeConfig (dir: string, config: Record<string, unknown>): string {
  const path = join(dir, 'keatrail.yaml')
  writeFileSync(path, stringify({ dataDir: join(dir, 'data'), api: { port: 0 }, ...config }))
  return path
}

export function startKeatrail (config: string): Keatrail {
  // As deployed: the systemd unit, the image and npm start cap the heap the same way.
  const proc = spawn(process.execPath, ['--max-old-space-size=256', join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const logs = (): LogLine[] => err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)
  const apiUrl = async (): Promise<string> => {
    for (let i = 0; i < 400; i++) {
      const line = logs().find((l) => l.msg === 'API and web UI listening.')
      if (line !== undefined) return line.url as string
      if (proc.exitCode !== null) break
      await sleep(25)
    }
    throw new Error(`keatrail did not serve its API:\n${err}`)
  }
  return { proc, logs, exited, apiUrl }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Waits until /readyz answers 200: the store answers and every source runs, its ports bound.
 * `keatrail run` serves its API before its sources have bound their ports: a datagram sent on
 * the API line alone may reach a port nobody listens on yet, lost before keatrail could see or
 * count it (the kernel answers with an ICMP error the sender never hears of).
 */
export async function ready (apiUrl: string, ms = 30_000): Promise<void> {
  if (!await until(async () => (await fetch(`${apiUrl}/readyz`)).status === 200, ms, 50)) throw new Error(`keatrail not ready within ${ms} ms`)
}

/** Prometheus text → `name{labels}` → value. */
export async function metrics (apiUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** A source's counter by its name in the counters (received: bytes; parsed: events handed over). */
export const sourceCounter = (m: Map<string, number>, source: string, counter: string): number => {
  const metric = ({
    received: `keatrail_source_received_bytes_total{source="${source}"}`,
    parsed: `keatrail_source_received_events_total{source="${source}"}`,
    stored: `keatrail_source_events_total{source="${source}",outcome="stored"}`,
    duplicates: `keatrail_source_events_total{source="${source}",outcome="duplicate"}`,
    deadLettered: `keatrail_source_events_total{source="${source}",outcome="dead_lettered"}`,
    unmatched: `keatrail_source_parsed_events_total{source="${source}",status="unmatched"}`,
    partial: `keatrail_source_parsed_events_total{source="${source}",status="partial"}`,
    spilled: `keatrail_source_spilled_events_total{source="${source}"}`,
    dropped: `keatrail_source_discarded_events_total{source="${source}"}`,
    errors: `keatrail_source_errors_total{source="${source}"}`
  } as Record<string, string>)[counter]
  if (metric === undefined) throw new Error(`no source metric for ${counter}`)
  return m.get(metric) ?? 0
}

/** The pipeline's counter by its name in PipelineCounters. */
export const pipelineCounter = (m: Map<string, number>, counter: string): number => {
  const metric = ({
    batches: 'keatrail_pipeline_batches_total',
    stored: 'keatrail_pipeline_events_total{outcome="stored"}',
    duplicates: 'keatrail_pipeline_events_total{outcome="duplicate"}',
    deadLettered: 'keatrail_pipeline_events_total{outcome="dead_lettered"}',
    storeErrors: 'keatrail_pipeline_store_errors_total',
    backpressured: 'keatrail_pipeline_backpressure_waits_total',
    queued: 'keatrail_pipeline_queued_batches'
  } as Record<string, string>)[counter]
  if (metric === undefined) throw new Error(`no pipeline metric for ${counter}`)
  return m.get(metric) ?? 0
}

/** Resident set size of a process, MiB (Linux). */
export function rssMiB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) / 1024
}

/**
 * Watches a flood against `keatrail run`: samples its RSS and the stored count until `total`
 * events are stored, it exits, or `ms` pass. `peak` and `stored` are read when it resolves.
 */
export function watchFlood (kt: Keatrail, api: string, total: number, ms: number, every = 50): { done: Promise<void>, peak: () => number, stored: () => number, alive: () => boolean } {
  const pid = kt.proc.pid as number
  let peak = rssMiB(pid)
  let stored = 0
  let alive = true
  void kt.exited.then(() => { alive = false })
  const deadline = Date.now() + ms
  const done = (async () => {
    while (alive && stored < total && Date.now() < deadline) {
      try { peak = Math.max(peak, rssMiB(pid)) } catch { break }
      try { stored = pipelineCounter(await metrics(api), 'stored') } catch { /* dying: the loop ends on `alive` */ }
      await sleep(every)
    }
  })()
  return { done, peak: () => peak, stored: () => stored, alive: () => alive }
}

/** Polls `probe` until it returns true or `ms` pass; returns whether it did. */
export async function until (probe: () => boolean | Promise<boolean>, ms: number, every = 100): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await probe()) return true
    await sleep(every)
  }
  return await probe()
}

/** `event.original` of every event in a SQLite store file (keatrail stopped), as stored: an event stored twice shows twice. */
export async function storedOriginals (dbPath: string): Promise<string[]> {
  return storedEvents(dbPath).map((e) => e.event.original)
}

/**
 * Waits until a UDP source is quiet (its `moving` counter and `dropped` unchanged for a second,
 * nothing queued), stops keatrail (SIGTERM, exit 0) and counts what it stored in its SQLite file
 * and what it counted as dropped: the two UDP chaos tests' stored + dropped = sent.
 */
export async function quietThenStop (kt: Keatrail, api: string, dbPath: string, source: string, moving: string): Promise<{ stored: number, dropped: number }> {
  let last = ''
  const settled = await until(async () => {
    const m = await metrics(api)
    const now = `${sourceCounter(m, source, moving)}/${sourceCounter(m, source, 'dropped')}/${pipelineCounter(m, 'queued')}`
    const same = now === last && now.endsWith('/0')
    last = now
    return same
  }, 60_000, 1000)
  if (!settled) throw new Error(`source ${source} did not settle within 60 s (last ${last})`)
  const dropped = sourceCounter(await metrics(api), source, 'dropped')
  kt.proc.kill('SIGTERM')
  const code = await kt.exited
  if (code !== 0) throw new Error(`keatrail exited ${String(code)}`)
  const db = new Database(dbPath, { readonly: true })
  try {
    return { stored: (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n, dropped }
  } finally { db.close() }
}
