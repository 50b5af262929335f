import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SpillQueue } from '../../src/pipeline/spill.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

const quiet = { info: () => {}, error: () => {} }

// M5: the spill queue was drained only from the flushMs timer, at most maxPendingBatches ×
// batchEvents per tick, however fast the store took them; while anything is spilled every live
// datagram is spilled too, so input above that rate filled the queue and was dropped.
describe('syslog UDP spill queue drain', () => {
  it('drains as fast as the pipeline takes batches, not one set of batches per flushMs tick', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-spill-drain-'))
    mkdirSync(join(dir, 'state'))
    const SPILLED = 2000
    // Left by an earlier run: read again first at start.
    const q = new SpillQueue(join(dir, 'state', 'spill-u.db'), 64 * 1024 * 1024)
    for (let i = 0; i < SPILLED; i++) expect(q.push(Buffer.from(`<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.leases.1] DHCP4_X spilled ${i}`), '127.0.0.1', Date.now())).toBe(true)
    q.close()

    const store = new SqliteStore({ path: join(dir, 'k.db') })
    // One tick in a minute: at most maxPendingBatches × batchEvents = 200 per tick before the fix.
    const source = new SyslogSource({ type: 'syslog', name: 'u', udp: { host: '127.0.0.1', port: 0 }, flushMs: 60_000, batchEvents: 100, maxPendingBatches: 2, timeZone: 'UTC' }, join(dir, 'state'))
    const pipeline = new Pipeline(store, { log: quiet })
    const stop = new AbortController()
    const run = pipeline.run([source], stop.signal)
    try {
      // Well within the first tick (60 s): drained while room returns.
      await vi.waitFor(async () => { expect(await store.count()).toBe(SPILLED) }, { timeout: 15_000, interval: 50 })
    } finally {
      stop.abort()
      await run
      await store.close()
    }
    const left = new SpillQueue(join(dir, 'state', 'spill-u.db'), 1)
    expect(left.count()).toBe(0)
    left.close()
  }, 30_000)
})
