import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { buildSources } from '../../src/app/sources.js'
import { parseConfig } from '../../src/config/config.js'
import type { Store } from '../../src/store/types.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// The composition root builds each source from its config and the context: a file source whose
// config names no batch size takes its store's (Elasticsearch 1,000: fewer events held in the
// queue; docs/BENCHMARKS.md, issue 21), else its own default (5,000).

async function batchSizes (store: Partial<Store>, fileCfg: Record<string, unknown> = {}): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kt-sources-'))
  const log = join(dir, 'kea.log')
  // 12,000 lines: batches of the size in force, then the rest.
  const lines = readFileSync(join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log'), 'utf8').trimEnd().split('\n')
  writeFileSync(log, Array.from({ length: 12_000 }, (_, i) => lines[i % lines.length]).join('\n') + '\n')
  const cfg = parseConfig({ dataDir: dir, sources: [{ type: 'file', name: 'f', include: [log], timeZone: 'UTC', idleFlushMs: 50, ...fileCfg }] })
  const [source] = buildSources(cfg, { stateDir: join(dir, 'state'), logger: pino({ level: 'silent' }), store: store as Store })
  const sizes: number[] = []
  const stop = new AbortController()
  const run = source!.run(async (b) => { sizes.push(b.events.length); b.ack() }, stop.signal)
  await vi.waitFor(() => { expect(sizes.reduce((a, b) => a + b, 0)).toBe(12_000) }, { timeout: 20_000, interval: 50 })
  stop.abort()
  await run
  return sizes
}

describe('buildSources', () => {
  it('gives a file source its store\'s batch size unless its config names one', async () => {
    // A batch is handed over once it holds the size (a read's last lines may go a few over), or
    // at the end of the file.
    const of = (size: number, sizes: number[]): void => {
      expect(Math.max(...sizes), sizes.join(',')).toBeGreaterThanOrEqual(size)
      expect(Math.max(...sizes), sizes.join(',')).toBeLessThan(size + 64)
      expect(sizes.filter((n) => n >= size).length, sizes.join(',')).toBeGreaterThanOrEqual(Math.floor(12_000 / (size + 64)))
    }
    of(1000, await batchSizes({ batchEvents: 1000 }))
    of(5000, await batchSizes({}))
    of(3000, await batchSizes({ batchEvents: 1000 }, { batchEvents: 3000 }))
  })
})
