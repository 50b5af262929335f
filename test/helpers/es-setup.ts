import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the real Elasticsearch for this run, or '' when there is none. */
    esUrl: string
    /** Why there is none (tests report "skipped: <reason>"). */
    esSkipReason: string
  }
}

const script = join(import.meta.dirname, '..', '..', 'scripts', 'elasticsearch.sh')

async function healthy (url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/_cluster/health`, { signal: AbortSignal.timeout(3000) })
    return res.ok
  } catch {
    return false
  }
}

/**
 * Starts the real Elasticsearch for the suites that need it (scripts/elasticsearch.sh), or uses
 * ES_URL. If it cannot start: with CI=true the run fails; locally those suites are skipped and
 * say why. KEATRAIL_NO_ES=1 skips starting it.
 */
export default async function setup (project: TestProject): Promise<() => void> {
  let url = process.env.ES_URL ?? ''
  let reason = ''
  let started = false
  if (url === '' && process.env.KEATRAIL_NO_ES === '1') reason = 'KEATRAIL_NO_ES=1'
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
        reason = `Elasticsearch could not be started: ${(err as Error).message.split('\n')[0] ?? ''}`
      }
    }
  }
  if (url === '' && process.env.CI === 'true') throw new Error(`CI needs Elasticsearch. ${reason}`)
  project.provide('esUrl', url)
  project.provide('esSkipReason', reason)
  return () => {
    if (started) execFileSync('bash', [script, 'stop'], { stdio: 'inherit' })
  }
}
