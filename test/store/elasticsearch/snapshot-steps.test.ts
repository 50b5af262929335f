import { describe, expect, it } from 'vitest'
import { failedSnapshot, type KeaSnapshot } from '../../../src/kea/snapshot.js'
import { EsSnapshots } from '../../../src/store/elasticsearch/snapshots.js'
import { MAX_PAGE_BYTES } from '../../../src/store/types.js'

// A snapshot page from Elasticsearch is searched in steps: the review of the third audit's fix
// found that after a run of small documents (unreachable snapshots) one step asked for 1,000 at
// once and 125 MB of 1,000-subnet documents came back to fill one 8 MiB page. An engine that
// answers searches from an array shows what each step asked for and how much came back.

const T = Date.parse('2026-11-24T00:00:00Z')
const SUBNETS = Array.from({ length: 1000 }, (_, k) => ({ id: k + 1, subnet: `10.${k >> 8}.${k & 255}.0/24`, shared_network: `net-${k % 10}`, total: 254, assigned: 100, declined: 0, free: 154, utilization: 39.37 })) as KeaSnapshot['subnets']
const big = (i: number): KeaSnapshot => ({ '@timestamp': new Date(T + i * 30_000).toISOString(), id: `kea-big|dhcp4|${i}`, server: 'kea-big', service: 'dhcp4', state: 'up', subnets: SUBNETS, shared_networks: [], totals: { total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 }, packets: {} })

describe('Elasticsearch snapshot pages', () => {
  it('grow their steps at most twofold, so small documents first cannot make one search return far more than a page', async () => {
    const docs = [
      ...Array.from({ length: 20 }, (_, i) => failedSnapshot('kea-big', 'dhcp4', T - (20 - i) * 30_000, 30_000, 'unreachable', 'connect ECONNREFUSED')),
      ...Array.from({ length: 1100 }, (_, i) => big(i))
    ]
    const sizes = docs.map((d) => JSON.stringify(d).length)
    const asked: number[] = []
    const answered: number[] = []
    const client = {
      search: async (req: { size?: number, search_after?: [number, string] }) => {
        let start = 0
        if (req.search_after !== undefined) start = docs.findIndex((d) => d.id === req.search_after?.[1]) + 1
        const n = req.size ?? 10
        asked.push(n)
        answered.push(sizes.slice(start, start + n).reduce((a, b) => a + b, 0))
        return { hits: { hits: docs.slice(start, start + n).map((d) => ({ _source: { doc: d }, sort: [Date.parse(d['@timestamp']), d.id] })) } }
      }
    }
    const page = await new EsSnapshots(client as never, 'x').page({ size: 10_000 })
    expect(page.cursor).toBeDefined()
    expect(page.snapshots.length).toBeGreaterThan(20)
    for (let i = 1; i < asked.length; i++) expect(asked[i]).toBeLessThanOrEqual(2 * (asked[i - 1] as number))
    // No answer more than twice a page (the old steps: one of ~125 MB).
    expect(Math.max(...answered)).toBeLessThanOrEqual(2 * MAX_PAGE_BYTES)
  })
})
