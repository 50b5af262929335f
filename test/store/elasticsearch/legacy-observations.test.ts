import { describe, expect, inject, it } from 'vitest'
import { coverageSpans, observeAll } from '../../../src/leases/observe.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { ElasticsearchStore } from '../../../src/store/elasticsearch/store.js'
import { leaseIndices } from '../../../src/store/elasticsearch/leases.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'
import { expectedIntervals } from '../../helpers/lease-truth.js'

// keatrail before event documents carried kea.lease.key kept one observation document per
// lease-shaping event in keatrail-lease-obs-<ns>. A cluster written that way must still derive
// correctly when late or replayed events make keatrail re-read those observations.

const esUrl = inject('esUrl')
const esSkip = esUrl === '' ? inject('esSkipReason') : ''

describe.skipIf(esSkip !== '' && process.env.CI !== 'true')(`elasticsearch store: observations of an older keatrail${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  it('re-derivation reads the legacy observation index beside the events', async () => {
    const events: KeaEvent[] = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { host: 'kea-a', path: 'kea-a/dhcp4.log' })).events
    const expected = expectedIntervals(events)
    const ns = `legacy${Date.now().toString(36)}`
    const old = events.slice(0, Math.floor(events.length * 0.7))
    const store = new ElasticsearchStore({ url: esUrl, namespace: ns })
    try {
      await store.ensureTemplates()
      // What the older keatrail left: events without the key, an observation document each, and
      // the intervals derived from them.
      const ops: unknown[] = []
      for (const e of old) ops.push({ create: { _index: `logs-${e.event.dataset}-${ns}`, _id: e.event.id } }, { ...e, data_stream: { type: 'logs', dataset: e.event.dataset, namespace: ns } })
      for (const o of observeAll(old)) ops.push({ index: { _index: leaseIndices(ns).obs, _id: o.event_id } }, { key: o.key, ts: o.ts, seq: o.seq, scope: o.scope, doc: o })
      const res = await store.client.bulk({ operations: ops, refresh: true })
      expect(res.errors).toBe(false)
      await store.leases.apply(observeAll(old), coverageSpans(old))
    } finally {
      await store.close()
    }

    // This keatrail, a new process: the rest of the log, then the old part's second half again
    // (a replay: its events answer 409 and stay without the key, so only the legacy index has
    // their observations).
    const next = new ElasticsearchStore({ url: esUrl, namespace: ns })
    try {
      await next.ensureTemplates()
      await next.write(events.slice(old.length))
      await next.write(old.slice(Math.floor(old.length / 2)))
      for (const [key, want] of expected) {
        const [scope, , lease] = key.split('|') as [string, string, string]
        expect(await next.leases.intervals({ address: lease, scope }), key).toEqual(want)
      }
      expect((await next.leases.stats()).observations).toBe(observeAll(events).length)
      // Read back, events are as parsed: the key is an index field only.
      const page = await next.search({ size: 50, filters: { action: ['allocate'] } })
      expect(page.events.length).toBeGreaterThan(0)
      for (const e of page.events) expect(e.kea.lease).not.toHaveProperty('key')
    } finally {
      await next.close()
    }
  })
})
