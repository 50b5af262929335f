import { readFileSync, existsSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { derivationOf, markDerivable } from '../../src/parse/derivation.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { parseStream, type ParseStreamOptions } from '../../src/parse/stream.js'
import type { ParseStats } from '../../src/parse/parser.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const FIXTURES = join(ROOT, 'test', 'fixtures')
export const KEA_FIXTURES = join(FIXTURES, 'kea')
/** The shared Kea material (samples, catalogs); KEATRAIL_SHARED_DIR points elsewhere (and lets a test prove CI fails without it). */
export const SHARED = process.env.KEATRAIL_SHARED_DIR ?? join(ROOT, '..', 'shared')
export const CATALOG_DIR = join(SHARED, 'kea', 'catalog')
export const hasCatalog = existsSync(CATALOG_DIR)

/**
 * Whether a suite needing `path` may skip: only locally. With CI=true it runs and fails on the
 * missing material, like the other real-component suites (a silent skip would pass CI untested).
 */
export function skipWithout (path: string): boolean {
  return !existsSync(path) && process.env.CI !== 'true'
}

export function readFixture (name: string): Buffer {
  const buf = readFileSync(join(KEA_FIXTURES, name))
  return name.endsWith('.gz') ? gunzipSync(buf) : buf
}

/**
 * The per-ID excerpt files (…-lease-events.txt) group real records under "### ID" headings
 * followed by a blank line (../shared/kea/tools/extract_samples.py). This restores the raw log
 * text: the headings and the separator line before each heading go, record lines stay.
 */
export function excerptToLog (text: string): string {
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    if (line.startsWith('### ')) continue
    const next = lines[i + 1]
    if (line === '' && (next === undefined || next.startsWith('### '))) continue
    out.push(line)
  }
  return out.join('\n') + '\n'
}

export async function parseBuffer (buf: Buffer | string, opts: Partial<ParseStreamOptions> = {}): Promise<{ events: KeaEvent[], stats: ParseStats }> {
  const events: KeaEvent[] = []
  const input = typeof buf === 'string' ? Buffer.from(buf) : buf
  // Feed in small chunks so records also cross chunk boundaries.
  async function * chunks (): AsyncGenerator<Buffer> {
    for (let i = 0; i < input.length; i += 4096) yield input.subarray(i, i + 4096)
  }
  const stats = await parseStream(chunks(), { pattern: opts.pattern ?? '%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i.%t] %m\n', timeZone: 'UTC', ...opts }, (b) => { events.push(...b) })
  return { events, stats }
}

/**
 * `e` as plain JSON (undefined fields gone), still marked re-derivable when its parser marked it:
 * the block store then keeps its raw record only and makes its document again when read.
 */
export function plainCopy (e: KeaEvent): KeaEvent {
  const copy = JSON.parse(JSON.stringify(e)) as KeaEvent
  const d = derivationOf(e)
  if (d !== undefined) markDerivable(copy, d)
  return copy
}
