import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { holderAt } from '../../src/leases/query.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { engineStore, enginesUp } from '../helpers/engines.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

// A stored event that parsed worse is replaced by one with its id that parsed better, in every
// store; what the old one said about leases is withdrawn (issue 18).

let seq = 0
const makers: Record<string, () => Promise<Store>> = {
  sqlite: async () => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-repair-')), 'keatrail.db') }),
  ...Object.fromEntries(enginesUp().up.map((engine) => [engine.name, async () => {
    const s = engineStore(engine, { namespace: `repairc${Date.now().toString(36)}${seq++}`, refresh: false })
    await s.ensureTemplates()
    return s
  }]))
}

/** The allocation of 192.0.2.12 (18:02:32.689Z), and a `partial` reading of the same line that took another address. */
async function allocation (): Promise<{ ok: KeaEvent, partial: KeaEvent }> {
  const { events } = await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-b', path: 'kea-b/kea-dhcp4.log' })
  const ok = events.find((e) => e.event.action === 'allocate' && e.kea.lease?.address === '192.0.2.12') as KeaEvent
  const partial = structuredClone(ok)
  partial.kea.parse.status = 'partial'
  partial.kea.lease = { ...partial.kea.lease, address: '192.0.2.99' }
  partial.related = { ip: ['192.0.2.99'] }
  delete partial.client
  return { ok, partial }
}

const AT = Date.parse('2026-11-24T18:02:40Z')

describe.each(Object.keys(makers))('replacing an event that parsed worse (%s)', (kind) => {
  it('replaces it, withdraws what it said about leases, and derives what the new one says', async () => {
    const store = await (makers[kind] as () => Promise<Store>)()
    try {
      const { ok, partial } = await allocation()
      expect(await store.write([partial])).toEqual({ written: 1, duplicates: 0, deadLettered: 0 })
      expect((await holderAt(store.leases, '192.0.2.99', AT)).holders).toHaveLength(1)

      expect(await store.write([ok])).toEqual({ written: 0, duplicates: 0, deadLettered: 0, replaced: 1 })
      expect((await holderAt(store.leases, '192.0.2.99', AT)).holders).toEqual([])
      expect((await holderAt(store.leases, '192.0.2.12', AT)).holders.map((h) => h.hwaddr)).toEqual(['02:00:00:00:00:0e'])
      if (store instanceof ElasticsearchStore) await store.refresh()
      expect(await store.count()).toBe(1)
      expect((await store.get(ok.event.id))?.kea.parse.status).toBe('ok')

      // Worse never replaces better, nor equal equal.
      expect(await store.write([partial])).toEqual({ written: 0, duplicates: 1, deadLettered: 0 })
      expect(await store.write([ok])).toEqual({ written: 0, duplicates: 1, deadLettered: 0 })
      expect((await holderAt(store.leases, '192.0.2.12', AT)).holders).toHaveLength(1)
    } finally {
      await store.close()
    }
  })
})
