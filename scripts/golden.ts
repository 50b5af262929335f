import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KeaEvent } from '../src/parse/event.js'
import { patternFromKeaConfig } from '../src/kea/kea-config.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { openLogFile, parseStream } from '../src/parse/stream.js'

/** One golden pair: a real Kea log and how it was written (test/fixtures/kea/golden/manifest.json). */
export interface GoldenCase {
  log: string
  pattern?: string
  keaConfig?: string
  output?: string
  tz?: string
  host?: string
}

export function loadManifest (fixtures: string): GoldenCase[] {
  return (JSON.parse(readFileSync(join(fixtures, 'kea', 'golden', 'manifest.json'), 'utf8')) as { cases: GoldenCase[] }).cases
}

export function expectedPath (fixtures: string, c: GoldenCase): string {
  return join(fixtures, c.log.replace(/\.(log|txt)(\.gz)?$/, '') + '.expected.ndjson')
}

/** Parses a golden case; times taken at parse time (patterns without a date) are masked. */
export async function parseGolden (fixtures: string, c: GoldenCase): Promise<KeaEvent[]> {
  const pattern = c.keaConfig !== undefined
    ? patternFromKeaConfig(join(fixtures, c.keaConfig), c.output).pattern
    : resolvePattern(c.pattern ?? 'kea-file')
  const events: KeaEvent[] = []
  await parseStream(openLogFile(join(fixtures, c.log)), {
    pattern,
    timeZone: c.tz ?? 'UTC',
    path: c.log,
    ...(c.host === undefined ? {} : { host: c.host })
  }, (batch) => { events.push(...batch) })
  for (const e of events) {
    if (e.event.ingested !== undefined) {
      e.event.ingested = '(parse time)'
      e['@timestamp'] = '(parse time)'
    }
  }
  return events
}
