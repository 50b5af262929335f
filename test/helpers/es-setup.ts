import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the real Elasticsearch for this run, or '' when there is none. */
    esUrl: string
    /** Why there is none (tests report "skipped: <reason>"). */
    esSkipReason: string
    /** URL of the real OpenSearch for this run, or '' when there is none. */
    osUrl: string
    osSkipReason: string
  }
}

const scripts = join(import.meta.dirname, '..', '..', 'scripts')

async function healthy (url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/_cluster/health`, { signal: AbortSignal.timeout(3000) })
    return res.ok
  } catch {
    return false
  }
}

/**
 * Starts the real Elasticsearch and OpenSearch for the suites that need them
 * (scripts/elasticsearch.sh, scripts/opensearch.sh), or uses ES_URL / OS_URL. If one cannot
 * start: with CI=true the run fails; locally those suites are skipped and say why.
 * KEATRAIL_NO_ES=1 skips starting either, KEATRAIL_NO_OS=1 OpenSearch only.
 */
export default async function setup (project: TestProject): Promise<() => void> {
  const es = await engine('Elasticsearch', 'elasticsearch.sh', process.env.ES_URL, process.env.KEATRAIL_NO_ES === '1' ? 'KEATRAIL_NO_ES=1' : '')
  const noOs = process.env.KEATRAIL_NO_ES === '1' ? 'KEATRAIL_NO_ES=1' : process.env.KEATRAIL_NO_OS === '1' ? 'KEATRAIL_NO_OS=1' : ''
  const os = await engine('OpenSearch', 'opensearch.sh', process.env.OS_URL, noOs)
  project.provide('esUrl', es.url)
  project.provide('esSkipReason', es.reason)
  project.provide('osUrl', os.url)
  project.provide('osSkipReason', os.reason)
  return () => {
    es.stop()
    os.stop()
  }
}

async function engine (name: string, file: string, given: string | undefined, off: string): Promise<{ url: string, reason: string, stop: () => void }> {
  const script = join(scripts, file)
  let url = given ?? ''
  let reason = ''
  let started = false
  if (url === '' && off !== '') reason = off
  if (url === '' && reason === '') {
    let running = ''
    try { running = execFileSync('bash', [script, 'url'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { /* none */ }
    if (running !== '' && await healthy(running)) {
      url = running
      await pruneEarlierRuns(url)
    } else {
      try {
        url = execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 900_000 }).trim().split('\n').pop() ?? ''
        started = true
      } catch (err) {
        reason = `${name} could not be started: ${(err as Error).message.split('\n')[0] ?? ''}`
      }
    }
  }
  if (url === '' && process.env.CI === 'true') throw new Error(`CI needs ${name}. ${reason}`)
  return { url, reason, stop: () => { if (started) execFileSync('bash', [script, 'stop'], { stdio: 'inherit' }) } }
}

/** How old a test index must be to belong to an earlier run (a whole run takes under 30 min). */
const EARLIER_RUN_MS = 2 * 3600_000

/**
 * Deletes the data streams and indices that earlier runs left on an instance this run reuses.
 * Tests make a namespace of their own each and never delete it; a reused instance collected
 * the namespaces of ~4 full runs and reached its limit of 1,000 open shards, failing the next
 * run's writes. Only what is older than any run in progress is deleted, so a second run beside
 * this one keeps its indices; an instance given by ES_URL / OS_URL is never touched.
 */
export async function pruneEarlierRuns (url: string, now = Date.now()): Promise<{ dataStreams: number, indices: number }> {
  const get = async (path: string): Promise<unknown> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(30_000) })
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
    return await res.json()
  }
  const del = async (path: string): Promise<void> => {
    const res = await fetch(`${url}${path}`, { method: 'DELETE', signal: AbortSignal.timeout(120_000) })
    if (!res.ok && res.status !== 404) throw new Error(`DELETE ${path}: ${res.status} ${await res.text()}`)
  }
  const settings = await get('/_all/_settings/index.creation_date?expand_wildcards=open,closed,hidden') as Record<string, { settings: { index: { creation_date: string } } }>
  const created = new Map(Object.entries(settings).map(([name, s]) => [name, Number(s.settings.index.creation_date)]))
  const old = (name: string): boolean => now - (created.get(name) ?? now) > EARLIER_RUN_MS
  // The integ-test builds the scripts start have no data streams (an x-pack feature): none to list.
  const listed = await fetch(`${url}/_data_stream/*`, { signal: AbortSignal.timeout(30_000) })
  const streams = (listed.ok ? await listed.json() as { data_streams: Array<{ name: string, system?: boolean, indices: Array<{ index_name: string }> }> } : { data_streams: [] }).data_streams
    .filter((d) => d.system !== true && !d.name.startsWith('.') && d.indices.every((i) => old(i.index_name)))
    .map((d) => d.name)
  // Plain indices only: a data stream's backing indices go with it, dot-named ones are the engine's own.
  const indices = [...created.keys()].filter((name) => !name.startsWith('.') && old(name))
  const chunks = (names: string[]): string[][] => Array.from({ length: Math.ceil(names.length / 50) }, (_, i) => names.slice(i * 50, i * 50 + 50))
  for (const names of chunks(streams)) await del(`/_data_stream/${names.map(encodeURIComponent).join(',')}`)
  for (const names of chunks(indices)) await del(`/${names.map(encodeURIComponent).join(',')}?ignore_unavailable=true`)
  return { dataStreams: streams.length, indices: indices.length }
}
