import type { estypes } from '@elastic/elasticsearch'
import type { SearchEngine } from './engine.js'
import { MAX_SNAPSHOTS, type KeaSnapshot, type SnapshotQuery, type SnapshotStore } from '../../kea/snapshot.js'

export function snapshotIndex (namespace: string): string {
  return `keatrail-snapshots-${namespace}`
}

/**
 * Kea status snapshots in Elasticsearch: indexed by id (an upsert), the whole snapshot kept in
 * `doc`. Besides the server document (`kind: server`), each subnet and shared network gets a
 * small document of its own (`kind: subnet | shared-network`, flat `pool.*` fields): object
 * arrays are flattened in Elasticsearch, so "utilization per subnet over time" in Kibana needs
 * one document per pool.
 */
export class EsSnapshots implements SnapshotStore {
  private readonly index: string

  constructor (private readonly client: SearchEngine, namespace: string) {
    this.index = snapshotIndex(namespace)
  }

  async write (snapshots: readonly KeaSnapshot[]): Promise<void> {
    if (snapshots.length === 0) return
    const operations: unknown[] = []
    for (const s of snapshots) {
      const base = { '@timestamp': s['@timestamp'], server: s.server, service: s.service, state: s.state, key: `${s.server}|${s.service}` }
      operations.push({ index: { _index: this.index, _id: s.id } }, { ...s, ...base, kind: 'server', doc: s })
      for (const u of s.subnets) {
        const { id, ...rest } = u
        operations.push({ index: { _index: this.index, _id: `${s.id}|subnet|${id}` } }, { ...base, id: `${s.id}|subnet|${id}`, kind: 'subnet', pool: { subnet_id: id, ...rest } })
      }
      for (const n of s.shared_networks) {
        const { name, ...rest } = n
        operations.push({ index: { _index: this.index, _id: `${s.id}|network|${name}` } }, { ...base, id: `${s.id}|network|${name}`, kind: 'shared-network', pool: { shared_network: name, ...rest } })
      }
    }
    const res = await this.client.bulk({ operations, refresh: true })
    const bad = res.items.map((i) => i.index).find((r) => r?.error !== undefined)
    if (bad !== undefined) throw new Error(`snapshot not stored: ${bad.status} ${bad.error?.type ?? ''}: ${bad.error?.reason ?? ''}`)
  }

  async query (q: SnapshotQuery): Promise<KeaSnapshot[]> {
    const filter: estypes.QueryDslQueryContainer[] = [{ term: { kind: 'server' } }]
    if (q.server !== undefined) filter.push({ term: { server: q.server } })
    if (q.service !== undefined) filter.push({ term: { service: q.service } })
    if (q.subnet_id !== undefined) filter.push({ term: { 'subnets.id': q.subnet_id } })
    if (q.from !== undefined || q.to !== undefined) {
      filter.push({ range: { '@timestamp': { ...(q.from === undefined ? {} : { gte: q.from }), ...(q.to === undefined ? {} : { lt: q.to }), format: 'epoch_millis' } } })
    }
    const size = Math.min(Math.max(Math.trunc(q.size ?? 1000), 1), MAX_SNAPSHOTS)
    const res = await this.client.search<{ doc: KeaSnapshot }>({
      index: this.index, ignore_unavailable: true, allow_no_indices: true, size, query: { bool: { filter } },
      sort: [{ '@timestamp': 'asc' }, { id: 'asc' }], _source: ['doc']
    })
    return res.hits.hits.map((h) => (h._source as { doc: KeaSnapshot }).doc)
  }

  async latest (server?: string): Promise<KeaSnapshot[]> {
    const res = await this.client.search<{ doc: KeaSnapshot }>({
      index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 1000,
      query: { bool: { filter: [{ term: { kind: 'server' } }, ...(server === undefined ? [] : [{ term: { server } }])] } },
      collapse: { field: 'key' },
      sort: [{ '@timestamp': 'desc' }], _source: ['doc']
    })
    return res.hits.hits.map((h) => (h._source as { doc: KeaSnapshot }).doc)
      .sort((a, b) => byte(a.server, b.server) || byte(a.service, b.service))
  }
}

/** Code-unit order, as SQLite's BINARY collation sorts: both stores list servers alike. */
function byte (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
