import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { discardedEvents } from '../../bench/load.js'
import { buildApp } from '../../src/api/app.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// L6: bench/query-stall looked for keatrail_source_events{source="burst",counter="dropped"},
// a metric renamed since (keatrail_source_discarded_events_total{source=…}): it printed "NaN
// dropped". Its reader is checked against the service's own /metrics.

describe('bench/query-stall reads the drops from /metrics', () => {
  it('finds keatrail_source_discarded_events_total of its source, and NaN for a source not there', async () => {
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-bench-metrics-')), 'k.db') })
    const app = await buildApp({ store, status: { sources: () => ({ burst: { received: 10, dropped: 1234, spilled: 0, errors: 0 }, other: { dropped: 5 } }) } })
    try {
      const text = (await app.inject({ url: '/metrics' })).body
      expect(discardedEvents(text, 'burst')).toBe(1234)
      expect(discardedEvents(text, 'other')).toBe(5)
      expect(discardedEvents(text, 'absent')).toBeNaN()
    } finally {
      await app.close()
      await store.close()
    }
  })
})
