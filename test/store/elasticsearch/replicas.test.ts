import { describe, expect, it } from 'vitest'
import { leaseIndices } from '../../../src/store/elasticsearch/leases.js'
import { snapshotIndex } from '../../../src/store/elasticsearch/snapshots.js'
import { engineStore, searchEngines } from '../../helpers/engines.js'

// Issue 21: on a cluster, lease history and snapshots need a replica or losing one node stops
// lease history (and every write with it). Indices made by an earlier keatrail, whose templates
// said `number_of_replicas: 0`, are given `auto_expand_replicas: 0-1` on start; a replica count
// an operator set stays.

for (const engine of searchEngines()) {
  describe.skipIf(engine.skip !== '' && process.env.CI !== 'true')(`${engine.name}: replicas of the lease and snapshot indices${engine.skip === '' ? '' : ` (skipped: ${engine.skip})`}`, () => {
    it('an old index without a replica gets one wherever a second node can hold it; an operator\'s count stays', async () => {
      const namespace = `replicas${Date.now().toString(36)}`
      const l = leaseIndices(namespace)
      // As made before: no replica and none to expand (keatrail's templates now give every new
      // index `auto_expand_replicas`, so the test says `false` itself).
      const put = async (index: string, replicas: number): Promise<void> => {
        const res = await fetch(`${engine.url}/${index}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ settings: { index: { number_of_replicas: replicas, auto_expand_replicas: false } } }) })
        expect(res.status, await res.text()).toBe(200)
      }
      await put(l.intervals, 0)
      await put(snapshotIndex(namespace), 2)
      const store = engineStore(engine, { namespace })
      await store.ensureTemplates()
      await store.close()
      const settings = await (await fetch(`${engine.url}/${l.intervals},${snapshotIndex(namespace)}/_settings`)).json() as Record<string, { settings: { index: Record<string, unknown> } }>
      expect(settings[l.intervals]?.settings.index.auto_expand_replicas).toBe('0-1')
      expect(settings[snapshotIndex(namespace)]?.settings.index.auto_expand_replicas).toBe('false')
      expect(settings[snapshotIndex(namespace)]?.settings.index.number_of_replicas).toBe('2')
      // Created by keatrail's own templates: expanding from the start.
      const fresh = `${l.coverage}`
      await fetch(`${engine.url}/${fresh}`, { method: 'PUT' })
      const made = await (await fetch(`${engine.url}/${fresh}/_settings`)).json() as Record<string, { settings: { index: Record<string, unknown> } }>
      expect(made[fresh]?.settings.index.auto_expand_replicas).toBe('0-1')
    })
  })
}
