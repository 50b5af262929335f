import type { estypes } from '@elastic/elasticsearch'
import { describe, expect, it } from 'vitest'
import { bulkCreate } from '../../../src/store/elasticsearch/bulk.js'
import type { SearchEngine } from '../../../src/store/elasticsearch/engine.js'

// The retry and split rules of keatrail's own bulk path, against an engine that answers what a
// busy cluster answers per item (429, 503, 409, 400): deterministic here, where a real cluster only
// answers 429 under load (the store suites run the same path against real Elasticsearch and
// OpenSearch).

/** An engine whose `_bulk` answers each document by `answer(id, attempt)`, recording the bodies. */
function engine (answer: (id: string, attempt: number) => number, inFlight?: { now: number, max: number }): { e: SearchEngine, bodies: string[] } {
  const bodies: string[] = []
  const seen = new Map<string, number>()
  const e = {
    bulkBody: async (sent: string | Buffer): Promise<estypes.BulkResponse> => {
      const body = sent.toString()
      bodies.push(body)
      if (inFlight !== undefined) { inFlight.now++; inFlight.max = Math.max(inFlight.max, inFlight.now) }
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (inFlight !== undefined) inFlight.now--
      const lines = body.split('\n').filter(Boolean)
      const items = []
      for (let i = 0; i < lines.length; i += 2) {
        const id = (JSON.parse(lines[i] as string) as { create: { _id: string } }).create._id
        const attempt = seen.get(id) ?? 0
        seen.set(id, attempt + 1)
        const status = answer(id, attempt)
        items.push({ create: { _index: 'x', _id: id, status, ...(status === 201 ? {} : { error: { type: `t${status}`, reason: `r${status}` } }) } })
      }
      return { errors: items.some((i) => i.create.status !== 201), took: 1, items } as estypes.BulkResponse
    }
  } as unknown as SearchEngine
  return { e, bodies }
}

const lines = (n: number): string[] => Array.from({ length: n }, (_, i) => `{"create":{"_index":"x","_id":"id${i}"}}\n{"n":${i}}\n`)
/** bulkCreate's count and line source over prepared lines. */
const over = (all: string[]): [number, (i: number) => string] => [all.length, (i) => all[i] as string]

describe('bulkCreate', () => {
  it('sends 429s and 5xx again until they are taken, waiting longer each time, and returns every other refusal with its index', async () => {
    // id3: 429 twice then created; id5: 503 (a shard recovering) four times then created; id7: 409; id8: 400.
    const { e } = engine((id, attempt) => id === 'id3' ? (attempt < 2 ? 429 : 201) : id === 'id5' ? (attempt < 4 ? 503 : 201) : id === 'id7' ? 409 : id === 'id8' ? 400 : 201)
    const told: Array<[number, number, number]> = []
    const t0 = Date.now()
    const r = await bulkCreate(e, ...over(lines(10)), { flushBytes: 1e6, concurrency: 2, retries: 2, waitMs: 10, maxWaitMs: 25, onStillRefused: (n, status, _reason, wait) => { told.push([n, status, wait]) } })
    expect(r.created).toBe(8)
    expect(r.refused.map((x) => [x.index, x.status, x.error?.type])).toEqual([[7, 409, 't409'], [8, 400, 't400']])
    // Waits of 10 and 20 ms (the quick retries), then 25 and 25 (capped), each of those told.
    expect(told).toEqual([[1, 503, 25], [1, 503, 25]])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75)
  })

  it('a document answered 503 for ever is sent again until the signal aborts, then the call rejects (nothing dead-lettered)', async () => {
    const { e, bodies } = engine((id) => id === 'id1' ? 503 : 201)
    const stop = new AbortController()
    let told = 0
    await expect(bulkCreate(e, ...over(lines(3)), {
      flushBytes: 1e6, concurrency: 1, retries: 0, waitMs: 5, maxWaitMs: 5, signal: stop.signal,
      onStillRefused: () => { if (++told === 3) stop.abort() }
    })).rejects.toThrow('bulk write abandoned with 1 documents still answered 503 t503: r503')
    // The first request, then id1 alone each time.
    expect(bodies.slice(1).every((b) => b.includes('"id1"') && !b.includes('"id0"'))).toBe(true)
    expect(bodies.length).toBeGreaterThanOrEqual(3)
  })

  it('a document answered 500 (an ingest pipeline failing on it) is sent again `retries` times, then refused: it holds no source for ever', async () => {
    const { e, bodies } = engine((id) => id === 'id1' ? 500 : 201)
    const r = await bulkCreate(e, ...over(lines(3)), { flushBytes: 1e6, concurrency: 1, retries: 2, waitMs: 5, maxWaitMs: 5 })
    expect(r).toEqual({ created: 2, refused: [{ index: 1, status: 500, error: { type: 't500', reason: 'r500' } }] })
    expect(bodies).toHaveLength(3)
  })

  it('splits the body at flushBytes, every document once, with at most `concurrency` requests in flight', async () => {
    const flight = { now: 0, max: 0 }
    const { e, bodies } = engine(() => 201, flight)
    const all = lines(100)
    const size = (all[0] as string).length
    const r = await bulkCreate(e, ...over(all), { flushBytes: size * 10, concurrency: 3, retries: 0, waitMs: 10, maxWaitMs: 10 })
    expect(r).toEqual({ created: 100, refused: [] })
    expect(bodies).toHaveLength(10)
    expect(bodies.join('')).toBe(all.join(''))
    expect(flight.max).toBe(3)
  })

  it('a 2xx answer that is no bulk answer (a proxy\'s page) rejects with what it was', async () => {
    const e = { bulkBody: async () => '<html>gateway</html>' } as unknown as SearchEngine
    await expect(bulkCreate(e, ...over(lines(3)), { flushBytes: 1e6, concurrency: 1, retries: 0, waitMs: 10, maxWaitMs: 10 })).rejects.toThrow('bulk answered without items: "<html>gateway</html>"')
  })

  it('asks for a request\'s lines only when a request slot is free, and again for a document sent again', async () => {
    // The lines of a batch must not all be built (and held through every request) up front:
    // each request's lines are asked for when it can be sent, so they die young (issue 21).
    const asked: number[] = []
    const askedWhenSent: number[] = []
    const all = lines(6)
    const { e } = engine((id, attempt) => id === 'id4' && attempt === 0 ? 429 : 201)
    const bulkBody = e.bulkBody.bind(e)
    e.bulkBody = async (body) => { askedWhenSent.push(asked.length); return await bulkBody(body) }
    const r = await bulkCreate(e, all.length, (i) => { asked.push(i); return all[i] as string }, { flushBytes: (all[0] as string).length * 2, concurrency: 1, retries: 2, waitMs: 1, maxWaitMs: 1 })
    expect(r).toEqual({ created: 6, refused: [] })
    expect(askedWhenSent).toEqual([2, 4, 6, 7])
    expect(asked).toEqual([0, 1, 2, 3, 4, 5, 4])
  })

  it('a request that fails as a whole rejects the batch once the others settle', async () => {
    let calls = 0
    const e = { bulkBody: async () => { calls++; throw new Error('connection refused') } } as unknown as SearchEngine
    await expect(bulkCreate(e, ...over(lines(30)), { flushBytes: 100, concurrency: 2, retries: 0, waitMs: 10, maxWaitMs: 10 })).rejects.toThrow('connection refused')
    expect(calls).toBeLessThanOrEqual(3)
  })
})
