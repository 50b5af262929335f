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
