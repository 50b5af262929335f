import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { failedSnapshot, type KeaSnapshot } from '../../src/kea/snapshot.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { MAX_PAGE_BYTES, withinBudget, type SnapshotPageQuery, type Store } from '../../src/store/types.js'
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

// Pages (the third audit's finding 1): 10,000 snapshots of 100 subnets in one answer were ~130 MB
// and exhausted a 256 MiB heap; a page now stops at MAX_PAGE_BYTES of documents, in both stores
// (Elasticsearch asked in steps sized by the documents seen), the rest behind its cursor.
function big (i: number): KeaSnapshot {
  return snap('kea-big', 'dhcp4', i, i % 100, Array.from({ length: 1000 }, (_, k) => k + 1))
}
/** ~100 KB each: 100 are more than one page holds. */
const BIG = 100

describe(`snapshot pages: ${kinds.join(' and ')}${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const stores: Record<string, Store> = {}
  beforeAll(async () => {
    // A file, so that pages are read on its reader workers.
    stores.sqlite = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-snap-pages-')), 'k.db') })
    for (const engine of engines) {
      const es = engineStore(engine, { namespace: `snappage${Date.now().toString(36)}` })
      await es.ensureTemplates()
      stores[engine.name] = es
    }
    for (const s of Object.values(stores)) {
      for (let i = 0; i < BIG; i += 5) await s.snapshots.write(Array.from({ length: 5 }, (_, k) => big(i + k)))
    }
  }, 180_000)
  afterAll(async () => { for (const s of Object.values(stores)) await s.close() })

  const walk = async (s: Store, q: SnapshotPageQuery): Promise<string[][]> => {
    const pages: string[][] = []
    let cursor: string | undefined
    do {
      const page = await s.snapshots.page({ ...q, ...(cursor === undefined ? {} : { cursor }) })
      expect(page.snapshots.reduce((n, x) => n + JSON.stringify(x).length, 0)).toBeLessThanOrEqual(MAX_PAGE_BYTES)
      pages.push(page.snapshots.map((x) => x.id))
      cursor = page.cursor
    } while (cursor !== undefined && pages.length < 100)
    return pages
  }

  for (const kind of kinds) {
    it(`${kind}: at most MAX_PAGE_BYTES of documents a page, the rest behind its cursor; by size and subnet as well`, async () => {
      const s = stores[kind] as Store
      // Elasticsearch: each search asks for what the bytes left hold at the largest document seen
      // (one search of 10,000 such snapshots was ~1 GB of answer, parsed before any bound).
      const searches = kind === 'sqlite' ? undefined : vi.spyOn((s.snapshots as unknown as { client: { search: (r: { size?: number }) => Promise<unknown> } }).client, 'search')
      const pages = await walk(s, { size: 10_000 })
      if (searches !== undefined) {
        const asked = searches.mock.calls.map(([r]) => r.size ?? 10)
        searches.mockRestore()
        expect(asked.length).toBeGreaterThan(2)
        expect(Math.max(...asked) * JSON.stringify(big(0)).length).toBeLessThanOrEqual(MAX_PAGE_BYTES + 2 * JSON.stringify(big(0)).length)
      }
      const perPage = withinBudget(Array.from({ length: BIG }, (_, i) => big(i)), (x) => JSON.stringify(x).length).length
      expect(pages.map((p) => p.length)).toEqual([perPage, BIG - perPage])
      expect(pages.flat()).toEqual(Array.from({ length: BIG }, (_, i) => big(i).id))
      expect((await s.snapshots.query({ size: 10_000 })).map((x) => x.id)).toEqual(pages[0])
      const later = Array.from({ length: BIG - 5 }, (_, i) => big(5 + i).id)
      expect(await walk(s, { size: 30, subnet_id: 1000, from: T0 + 5 * 60_000 })).toEqual([0, 30, 60, 90].map((a) => later.slice(a, a + 30)))
      await expect(s.snapshots.page({ cursor: 'bm90IGEgY3Vyc29y' })).rejects.toMatchObject({ code: 'KEATRAIL_ERR_CURSOR_INVALID' })
    }, 60_000)
  }

  it('snapshots of one time (several servers) are split across pages without one lost or repeated', async () => {
    // Minutes 500 and 501, five servers each: pages of 1, 2 and 3 cut between equal times.
    const ties = [500, 501].flatMap((m) => Array.from({ length: 5 }, (_, k) => snap(`tie-${k}`, 'dhcp4', m, k)))
    for (const s of Object.values(stores)) await s.snapshots.write(ties)
    const window = { from: T0 + 500 * 60_000, to: T0 + 502 * 60_000 }
    const expected = [...ties].sort((a, b) => a['@timestamp'].localeCompare(b['@timestamp']) || (a.id < b.id ? -1 : 1)).map((x) => x.id)
    for (const kind of kinds) {
      for (const size of [1, 2, 3]) expect((await walk(stores[kind] as Store, { ...window, size })).flat(), `${kind}, pages of ${size}`).toEqual(expected)
    }
  })

  it('both stores page identically', async () => {
    const answers = await Promise.all(kinds.map(async (k) => await walk(stores[k] as Store, { size: 50, server: 'kea-big', to: T0 + 65 * 60_000 })))
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
  })
})
