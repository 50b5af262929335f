import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { leaseSetup, leasesConfigSchema } from '../../../src/leases/config.js'
import { historyPage, holderAt } from '../../../src/leases/query.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import type { LeaseWipe } from '../../../src/leases/wipes.js'
import { parseBuffer } from '../../helpers/fixtures.js'

// Lease domains and wipes over what a store held before this process started.
//
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

describe('stored lease wipes on start (sqlite)', () => {
  it('reads at most the wipes it keeps: a file holding a flood of them opens within its bound', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-wipes-')), 'keatrail.db')
    const wipe = (i: number): string => `${at(i)} INFO  [kea-dhcp4.dhcpsrv/100.200] DHCPSRV_MEMFILE_WIPE_LEASES4 removing all IPv4 leases from subnet 7`
    const { events } = await parseBuffer(Array.from({ length: 3000 }, (_, i) => wipe(i)).join('\n'), { host: 'kea-a', path: 'kea-a/wipes.log' })
    const first = new SqliteStore({ path })
    await first.write(events)
    await first.close()
    const store = new SqliteStore({ path })
    try {
      const read: number[] = []
      const stored = store.leases.wipesStored as (limit: number) => LeaseWipe[]
      store.leases.wipeLimit = 100
      store.leases.wipesStored = (limit) => { const got = stored(limit); read.push(got.length); return got }
      await store.write((await parseBuffer(alloc(4000, '02:00:00:00:00:0a', '192.0.2.60'), { host: 'kea-a', path: 'kea-a/lease.log' })).events)
      expect((await holderAt(store.leases, '192.0.2.60', t(4001))).holders).toHaveLength(1)
      expect(read).toEqual([100])
    } finally {
      await store.close()
    }
  })
})
