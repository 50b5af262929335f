import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { leaseSetup, leasesConfigSchema } from '../../../src/leases/config.js'
import { historyPage, holderAt } from '../../../src/leases/query.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import { parseBuffer } from '../../helpers/fixtures.js'

// A lease domain configured on a store that already holds history of its servers: that history
// stays under the server's own name (a change applies from then on), and a question about the
// server, a delete of its events or a repair must still reach it.

const at = (s: number): string => new Date(Date.parse('2026-11-24T10:00:00Z') + s * 1000).toISOString().replace('T', ' ').replace('Z', '')
const alloc = (s: number, mac: string, ip: string): string => `${at(s)} INFO  [kea-dhcp4.leases/100.200] DHCP4_LEASE_ALLOC [hwtype=1 ${mac}], cid=[no info], tid=0x1: lease ${ip} has been allocated for 3600 seconds`
const t = (s: number): number => Date.parse('2026-11-24T10:00:00Z') + s * 1000

describe('lease domains over history derived before them (sqlite)', () => {
  it('a question about a member server finds its earlier history; deleting its events withdraws it', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-domains-')), 'keatrail.db')
    const { events: before } = await parseBuffer(alloc(0, '02:00:00:00:00:0a', '192.0.2.60'), { host: 'kea-ha1', path: 'kea-ha1/old.log' })
    const { events: after } = await parseBuffer(alloc(10, '02:00:00:00:00:0b', '192.0.2.61'), { host: 'kea-ha1', path: 'kea-ha1/new.log' })
    const plain = new SqliteStore({ path })
    await plain.write(before)
    await plain.close()
    const leases = leasesConfigSchema.parse({ domains: [{ name: 'ha-pair', servers: ['kea-ha1', 'kea-ha2'] }] })
    const store = new SqliteStore({ path }, ...leaseSetup(leases))
    try {
      await store.write(after)
      expect((await holderAt(store.leases, '192.0.2.60', t(5), 'kea-ha1')).holders.map((h) => h.scope)).toEqual(['kea-ha1'])
      expect((await holderAt(store.leases, '192.0.2.61', t(15), 'kea-ha2')).holders.map((h) => [h.scope, h.servers])).toEqual([['ha-pair', ['kea-ha1']]])
      const gone = await store.deleteEvents({ filters: { host: ['kea-ha1'] } })
      expect(gone.deleted).toBe(2)
      // Both histories withdrawn: the one derived before the domain too (it cited deleted events).
      expect(gone.rederived).toBe(2)
      expect((await historyPage(store.leases, { address: '192.0.2.60' })).intervals).toEqual([])
      expect((await historyPage(store.leases, { address: '192.0.2.61' })).intervals).toEqual([])
    } finally {
      await store.close()
    }
  })
})
