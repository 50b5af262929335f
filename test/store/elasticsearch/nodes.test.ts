import { describe, expect, it } from 'vitest'
import { engineStore, searchEngines } from '../../helpers/engines.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// Issue 21: `url` + `nodes` name a cluster's nodes. A node that cannot be reached (here: the
// first one, a closed port) costs neither writes nor reads: the client marks it dead and the
// request goes to another node.

for (const engine of searchEngines()) {
  describe.skipIf(engine.skip !== '' && process.env.CI !== 'true')(`${engine.name}: a dead node among the cluster's nodes${engine.skip === '' ? '' : ` (skipped: ${engine.skip})`}`, () => {
    it('writes and every read are answered by the node that is up', async () => {
      const { events } = await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-a', path: 'a.log' })
      const retried: number[] = []
      const namespace = `nodes${Date.now().toString(36)}`
      const open = (): ReturnType<typeof engineStore> => engineStore({ ...engine, url: 'http://127.0.0.1:1' }, { nodes: [engine.url], namespace, refresh: true, retry: { initialMs: 50, maxMs: 200 } }, { onRetry: (_e, attempt) => retried.push(attempt) })
      const store = open()
      try {
        await store.ensureTemplatesWaiting()
        expect((await store.write(events)).written).toBe(events.length)
        // At most the first request met the dead node before the pool skipped it.
        expect(retried.length).toBeLessThanOrEqual(1)
      } finally {
        await store.close()
      }
      // Reads of processes that have not met the dead node yet (a new client each: its first
      // request may go to either node).
      for (let i = 0; i < 6; i++) {
        const reader = open()
        try {
          expect(await reader.count()).toBe(events.length)
          expect((await reader.search({ size: 5 })).events).toHaveLength(5)
        } finally {
          await reader.close()
        }
      }
    })
  })
}
