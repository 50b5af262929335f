import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { failedSnapshot, type KeaSnapshot } from '../../src/kea/snapshot.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { engineStore, enginesUp } from '../helpers/engines.js'

// Kea snapshots, both stores: the same snapshots in, the same answers out.

const T0 = Date.parse('2026-11-24T04:00:00Z')
function snap (server: string, service: 'dhcp4' | 'dhcp6', minute: number, assigned: number, subnets = [1, 2]): KeaSnapshot {
  const time = T0 + minute * 60_000
  return {
    '@timestamp': new Date(time).toISOString(), id: `${server}|${service}|${time}`, server, service, state: 'up', pid: 100 + minute,
    subnets: subnets.map((id) => ({ id, subnet: `192.0.${id}.0/24`, total: 100, assigned, declined: 0, free: 100 - assigned, utilization: assigned })),
    shared_networks: [], totals: { total: 100 * subnets.length, assigned: assigned * subnets.length, declined: 0, free: 0, utilization: assigned }, packets: { 'pkt4-received': minute }
  }
}

const { up: engines, skip: esSkip } = enginesUp()
const kinds = ['sqlite', ...engines.map((e) => e.name)]

describe(`snapshot store contract: ${kinds.join(' and ')}${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const stores: Record<string, Store> = {}
  const all: KeaSnapshot[] = []
  beforeAll(async () => {
    if (process.env.CI === 'true' && esSkip !== '') throw new Error(`CI needs Elasticsearch and OpenSearch: ${esSkip}`)
    for (let m = 0; m < 30; m++) all.push(snap('kea-a', 'dhcp4', m, m), snap('kea-b', 'dhcp4', m, 2 * m, m < 10 ? [1] : [1, 3]))
    all.push(failedSnapshot('kea-a', 'dhcp6', T0 + 31 * 60_000, 30_000, 'unreachable', 'ECONNREFUSED'))
    stores.sqlite = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-snap-')), 'k.db') })
    for (const engine of engines) {
      const es = engineStore(engine, { namespace: `snap${Date.now().toString(36)}` })
      await es.ensureTemplates()
      stores[engine.name] = es
    }
    for (const s of Object.values(stores)) {
      await s.snapshots.write(all)
      await s.snapshots.write(all.slice(0, 5).map((x) => ({ ...x, pid: 1 }))) // upsert: same ids
    }
  }, 60_000)
  afterAll(async () => { for (const s of Object.values(stores)) await s.close() })

  for (const kind of kinds) {
    it(`${kind}: by server, subnet and time range; upserts replace; latest per server and service`, async () => {
      const s = stores[kind] as Store
      const a = await s.snapshots.query({ server: 'kea-a', service: 'dhcp4' })
      expect(a).toHaveLength(30)
      expect(a[0]?.pid).toBe(1)
      expect(a.map((x) => x['@timestamp'])).toEqual([...a.map((x) => x['@timestamp'])].sort())
      const window = await s.snapshots.query({ from: T0 + 10 * 60_000, to: T0 + 20 * 60_000 })
      expect(window).toHaveLength(20)
      const withSubnet3 = await s.snapshots.query({ subnet_id: 3 })
      expect(withSubnet3.map((x) => x.server)).toEqual(Array(20).fill('kea-b'))
      expect(await s.snapshots.query({ size: 7 })).toHaveLength(7)
      const latest = await s.snapshots.latest()
      expect(latest.map((x) => [x.server, x.service, x.state])).toEqual([['kea-a', 'dhcp4', 'up'], ['kea-a', 'dhcp6', 'unreachable'], ['kea-b', 'dhcp4', 'up']])
      expect((await s.snapshots.latest('kea-b')).map((x) => x.totals.assigned)).toEqual([116])
    })
  }

  it('both stores answer identically', async () => {
    const q = async (s: Store): Promise<unknown> => [await s.snapshots.query({ server: 'kea-b', from: T0 + 5 * 60_000 }), await s.snapshots.latest()]
    const answers = await Promise.all(kinds.map(async (k) => await q(stores[k] as Store)))
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
  })
})
