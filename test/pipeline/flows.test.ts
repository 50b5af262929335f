import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import type { Source } from '../../src/pipeline/types.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

const quiet = { info: () => {}, error: () => {} }

describe('the pipeline counts each source\'s events', () => {
  it('by parse status and by what the store did with them, attributed by Batch.source', async () => {
    const events = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))).events
    const unmatched = { ...events[0]!, event: { ...events[0]!.event, id: 'x-unmatched' }, kea: { ...events[0]!.kea, parse: { ...events[0]!.kea.parse, status: 'unmatched' as const } } }
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-flows-')), 'k.db') })
    // a: 100 events then the same 100 again (duplicates); b: the other 106 and one unmatched.
    const source = (name: string, batches: Array<typeof events>): Source => ({
      name,
      run: async (emit, signal) => {
        for (const b of batches) await emit({ source: name, events: b, ack: () => {} })
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      },
      checkpoint: () => {}
    })
    const pipeline = new Pipeline(store, { log: quiet })
    const stop = new AbortController()
    const running = pipeline.run([source('a', [events.slice(0, 100), events.slice(0, 100)]), source('b', [[...events.slice(100), unmatched]])], stop.signal)
    await vi.waitFor(() => { expect(pipeline.counters.batches).toBe(3) }, { timeout: 10_000, interval: 20 })
    stop.abort()
    await running
    await store.close()
    // Before: per-source stored/duplicates stayed 0 (the pipeline counted them only in total).
    expect(pipeline.sourceFlow('a')).toEqual({ events: 200, ok: 200, partial: 0, unmatched: 0, stored: 100, duplicates: 100, deadLettered: 0 })
    expect(pipeline.sourceFlow('b')).toEqual({ events: 107, ok: 106, partial: 0, unmatched: 1, stored: 107, duplicates: 0, deadLettered: 0 })
    expect(pipeline.counters).toMatchObject({ stored: 207, duplicates: 100 })
  })
})
