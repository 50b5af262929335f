import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { fill, shape } from '../../../bench/generate.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { parseQuery, type QueryNode } from '../../../src/query/parse.js'
import { ElasticEngine } from '../../../src/store/elasticsearch/engine.js'
import { ElasticsearchStore } from '../../../src/store/elasticsearch/store.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// Issue 17 for Elasticsearch: every event read carries the query budget as the search's
// `timeout` and as the request's; an answer cut short is a coded 503, never partial hits.

const esUrl = inject('esUrl')
const esSkip = esUrl === '' ? inject('esSkipReason') : ''

async function failure (p: Promise<unknown>): Promise<{ code?: string, statusCode?: number, message: string }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string, statusCode?: number, message: string }
  }
  throw new Error('expected the read to fail')
}

describe.skipIf(esSkip !== '' && process.env.CI !== 'true')(`elasticsearch store: query cost bounds${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const ns = `bounds${Date.now().toString(36)}`
  let store: ElasticsearchStore
  beforeAll(async () => {
    store = new ElasticsearchStore({ url: esUrl, namespace: ns, refresh: true })
    await store.ensureTemplates()
    const events: KeaEvent[] = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { host: 'kea-a', path: 'kea-a/dhcp4.log' })).events
    await store.write(events)
  }, 120_000)
  afterAll(async () => { await store.close() })

  it('sends the budget as the search timeout of search, top and histogram reads', async () => {
    const seen: string[] = []
    const onRequest = (_err: unknown, meta: { meta: { request: { params: { path: string, querystring?: unknown, body?: unknown } } } } | null): void => {
      const p = meta?.meta.request.params
      if (p?.path.includes('/_search') === true) seen.push(`${String(p.querystring ?? '')} ${typeof p.body === 'string' ? p.body : JSON.stringify(p.body ?? '')}`)
    }
    const engine = store.client
    if (!(engine instanceof ElasticEngine)) throw new Error('an Elasticsearch store')
    engine.client.diagnostic.on('request', onRequest)
    try {
      const where = parseQuery('ip:192.0.2.0/24 OR NOT level:info') as QueryNode
      await store.search({ where, size: 5 })
      await store.top('code', { where }, 5)
      await store.histogram({ where }, 3_600_000)
    } finally {
      engine.client.diagnostic.off('request', onRequest)
    }
    expect(seen).toHaveLength(3)
    for (const s of seen) expect(s).toMatch(/"timeout":"10000ms"|timeout=10000ms/)
  })

  it('histograms refuse an interval that overflows and more than 10,000 buckets (KEATRAIL_ERR_QUERY_BUCKETS, 400)', async () => {
    const overflow = await failure(store.histogram({}, 999_999_999 * 86_400_000))
    expect(overflow.code).toBe('KEATRAIL_ERR_QUERY_BUCKETS')
    expect(overflow.statusCode).toBe(400)
    // Only buckets holding events are answered: 12,000 events seconds apart, one bucket a second.
    const big = new ElasticsearchStore({ url: esUrl, namespace: `${ns}big`, refresh: true })
    try {
      await big.ensureTemplates()
      await fill(big, shape(12_000))
      const many = await failure(big.histogram({}, 1000))
      expect(many.code).toBe('KEATRAIL_ERR_QUERY_BUCKETS')
      expect(many.message).toMatch(/more than 10000 buckets/)
      expect((await big.histogram({}, 86_400_000)).reduce((n, b) => n + b.count, 0)).toBe(12_000)
    } finally {
      await big.close()
    }
  }, 120_000)
})

// The answers of a cluster over budget, from a loopback stand-in: certain, where a real cluster
// finishes a small search before any budget a test could set.
describe('elasticsearch store: a read over its budget', () => {
  let server: Server
  let url = ''
  let mode: 'timed_out' | 'silent' = 'timed_out'
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume()
      if (mode === 'silent') return // never answers: the request timeout must end it
      res.writeHead(200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' })
      res.end(JSON.stringify({ took: 10_001, timed_out: true, _shards: { total: 1, successful: 1, skipped: 0, failed: 0 }, hits: { total: { value: 3, relation: 'eq' }, hits: [] }, count: 3 }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('a search Elasticsearch cut short (timed_out) is KEATRAIL_ERR_QUERY_TIMEOUT (503), not partial hits', async () => {
    mode = 'timed_out'
    const store = new ElasticsearchStore({ url, queryTimeoutMs: 10_000 })
    try {
      for (const read of [store.search({}), store.top('code', {}, 5), store.histogram({}, 60_000)]) {
        const err = await failure(read)
        expect(err.code).toBe('KEATRAIL_ERR_QUERY_TIMEOUT')
        expect(err.statusCode).toBe(503)
        expect(err.message).toMatch(/time budget of 10000 ms .*narrow it/)
      }
    } finally {
      await store.close()
    }
  })

  it('a request unanswered a second past the budget is abandoned: KEATRAIL_ERR_QUERY_TIMEOUT (503)', async () => {
    mode = 'silent'
    const store = new ElasticsearchStore({ url, queryTimeoutMs: 200 })
    try {
      const t0 = performance.now()
      const err = await failure(store.count({}))
      expect(err.code).toBe('KEATRAIL_ERR_QUERY_TIMEOUT')
      expect(err.statusCode).toBe(503)
      // Generous: answered, not left waiting for the 30 s request timeout of writes.
      expect(performance.now() - t0).toBeLessThan(15_000)
    } finally {
      await store.close()
    }
  })
})
