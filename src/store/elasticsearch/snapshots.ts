import type { estypes } from '@elastic/elasticsearch'
import type { SearchEngine } from './engine.js'
import { MAX_SNAPSHOTS, type KeaSnapshot, type SnapshotQuery } from '../../kea/snapshot.js'
import { decodeTimeCursor, encodeCursor, MAX_PAGE_BYTES, type SnapshotPage, type SnapshotPageQuery, type SnapshotPages } from '../types.js'

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
export class EsSnapshots implements SnapshotPages {
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
    return (await this.page(q)).snapshots
  }

  /**
   * At most `size` snapshots and MAX_PAGE_BYTES of documents (as the SQLite store), asked for in
   * steps sized by the largest document seen so far: one search of 10,000 snapshots of 1,000
   * subnets is ~1.3 GB of answer, parsed whole by the client before any bound could apply.
   */
  async page (q: SnapshotPageQuery): Promise<SnapshotPage> {
    const filter: estypes.QueryDslQueryContainer[] = [{ term: { kind: 'server' } }]
    if (q.server !== undefined) filter.push({ term: { server: q.server } })
    if (q.service !== undefined) filter.push({ term: { service: q.service } })
    if (q.subnet_id !== undefined) filter.push({ term: { 'subnets.id': q.subnet_id } })
    if (q.from !== undefined || q.to !== undefined) {
      filter.push({ range: { '@timestamp': { ...(q.from === undefined ? {} : { gte: q.from }), ...(q.to === undefined ? {} : { lt: q.to }), format: 'epoch_millis' } } })
    }
    let after: estypes.SortResults | undefined
    if (q.cursor !== undefined) {
      const c = decodeTimeCursor(q.cursor)
      after = [c.ts, c.id]
    }
    const size = Math.min(Math.max(Math.trunc(q.size ?? 1000), 1), MAX_SNAPSHOTS)
    const out: KeaSnapshot[] = []
    let bytes = 0
    let largest = 0
    let last: estypes.SortResults | undefined
    let more = false
    // The first step is small; each next one at most doubles it (up to SNAPSHOT_MAX_STEP), and
    // asks for no more than the bytes left hold at the largest document seen (and one more,
    // which tells whether the page is cut). Doubling, not the budget alone: small documents
    // first (unreachable snapshots, history from before a server grew) made the budget ask for
    // 1,000 at once, and 125 MB of 1,000-subnet documents came back to fill one page.
    let ask = Math.min(size + 1, SNAPSHOT_FIRST_STEP)
    for (;;) {
      const res = await this.client.search<{ doc: KeaSnapshot }>({
        index: this.index, ignore_unavailable: true, allow_no_indices: true, size: ask, query: { bool: { filter } },
        sort: [{ '@timestamp': 'asc' }, { id: 'asc' }], _source: ['doc'], ...(after === undefined ? {} : { search_after: after })
      })
      const hits = res.hits.hits
      for (const h of hits) {
        const doc = (h._source as { doc: KeaSnapshot }).doc
        const n = JSON.stringify(doc).length
        if (out.length === size || (out.length > 0 && bytes + n > MAX_PAGE_BYTES)) { more = true; break }
        out.push(doc)
        bytes += n
        largest = Math.max(largest, n)
        last = h.sort
      }
      if (more || hits.length < ask) break
      after = hits[hits.length - 1]?.sort
      ask = Math.max(1, Math.min(size + 1 - out.length, ask * 2, SNAPSHOT_MAX_STEP, Math.floor((MAX_PAGE_BYTES - bytes) / Math.max(largest, 1)) + 1))
    }
    return { snapshots: out, ...(more && last !== undefined ? { cursor: encodeCursor({ t: String(last[0]), id: String(last[1]) }) } : {}) }
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

/** Snapshots asked for in the first search of a page, and at most in any one. */
const SNAPSHOT_FIRST_STEP = 8
const SNAPSHOT_MAX_STEP = 64

/** Code-unit order, as SQLite's BINARY collation sorts: both stores list servers alike. */
function byte (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
