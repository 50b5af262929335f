import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { fill, ip, mac, shape, T0 } from '../../../bench/generate.js'
import { parseAddressOrPrefix } from '../../../src/leases/address.js'
import { parseQuery, type QueryNode } from '../../../src/query/parse.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import type { SqliteStoreConfig } from '../../../src/store/sqlite/config.js'

// Issue 17: better-sqlite3 is synchronous, and the API, the sources and the pipeline share one
// event loop: a slow query froze all of them. Event reads now run on worker threads with their
// own read-only connections; a read past its deadline is answered 503 and its worker replaced.

const dir = mkdtempSync(join(tmpdir(), 'kt-readers-'))
const path = join(dir, 'k.db')
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

// Within the query caps but slow: 32 ranges covering every stored address, each a subquery of
// all of event_ips (~0.8 s for 50k events on the 2-core test machine, ~1.6 s for 100k).
const HEAVY = parseQuery(Array.from({ length: 32 }, () => 'ip:0.0.0.0/0').join(' OR ')) as QueryNode
const EVENTS = 50_000

function open (readers: SqliteStoreConfig['readers'] = {}): SqliteStore {
  return new SqliteStore({ path, synchronous: 'normal', readers })
}

async function codeOf (p: Promise<unknown>): Promise<{ code?: string, statusCode?: number, message: string }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string, statusCode?: number, message: string }
  }
  throw new Error('expected the read to fail')
}

describe('sqlite reads on reader workers', () => {
  beforeAll(async () => {
    const store = open({ workers: 0 })
    await fill(store, shape(EVENTS))
    await store.close()
  }, 120_000)

  it('a heavy query leaves the main event loop free: its timers keep firing while the worker answers', async () => {
    const store = open()
    try {
      await store.count({}) // the worker is up
      let ticks = 0
      const timer = setInterval(() => { ticks++ }, 5)
      let n: number
      try {
        n = await store.count({ where: HEAVY })
      } finally {
        clearInterval(timer)
      }
      expect(n).toBe(EVENTS)
      // On the main thread the count ran synchronously: not one tick before it returned.
      expect(ticks).toBeGreaterThanOrEqual(3)
    } finally {
      await store.close()
    }
  })

  it('a free worker takes the next read without the main thread in between (which ingestion keeps busy)', async () => {
    const store = open({ workers: 2, maxQueued: 100 })
    try {
      await Promise.all([store.count({}), store.count({ where: HEAVY })]) // both workers are up
      // The main thread busy 80 ms at a time, as writing batches of 5,000 events keeps it; count
      // those turns until 60 cheap reads are answered. Handing each read over after the last one
      // answered took a turn per read per worker: ~30 turns.
      let answered = 0
      const reads = Array.from({ length: 60 }, async () => { await store.count({}); answered++ })
      let turns = 0
      while (answered < 60 && turns < 100) {
        const until = performance.now() + 80
        while (performance.now() < until) { /* busy, as a batch write is */ }
        turns++
        await new Promise((resolve) => setImmediate(resolve))
      }
      await Promise.all(reads)
      expect(turns).toBeLessThanOrEqual(10)
    } finally {
      await store.close()
    }
  })

  it('claim cells reused by many reads while one runs long: the late deadline stops the worker running it, no other', async () => {
    // workers + maxQueued = 3 cells: 40 reads go through them while the heavy one holds its own.
    const store = open({ workers: 2, maxQueued: 1, queryTimeoutMs: 150 })
    const pool = (store as unknown as { pool: { slots: Array<{ ready: boolean }> } }).pool
    try {
      // Both workers up, their connections open (the second starts when two reads are in flight).
      await vi.waitFor(async () => {
        await Promise.all([store.count({}), store.count({})])
        expect(pool.slots.filter((s) => s.ready)).toHaveLength(2)
      }, { timeout: 20_000, interval: 10 })
      const heavy = codeOf(store.count({ where: HEAVY }))
      for (let i = 0; i < 40; i++) expect(await store.count({}).catch((e: Error) => `read ${i}: ${e.message.slice(0, 40)}`)).toBe(EVENTS)
      expect((await heavy).code).toBe('KEATRAIL_ERR_QUERY_TIMEOUT')
      // The worker answering the cheap reads was not the one stopped: they go on at once.
      for (let i = 0; i < 5; i++) expect(await store.count({})).toBe(EVENTS)
    } finally {
      await store.close()
    }
  })

  it('a read past its deadline is answered KEATRAIL_ERR_QUERY_TIMEOUT (503) and the pool keeps serving', async () => {
    const store = open({ workers: 1, queryTimeoutMs: 50 })
    // A count of everything reads block summaries only.
    const cheap = async (): Promise<number> => await store.count({}).catch(() => -1)
    try {
      // Until its worker is up, a read waits in the queue (and may time out there).
      await expect.poll(cheap, { timeout: 20_000, interval: 100 }).toBeGreaterThan(0)
      const t0 = performance.now()
      const err = await codeOf(store.count({ where: HEAVY }))
      const answeredMs = performance.now() - t0
      expect(err.code).toBe('KEATRAIL_ERR_QUERY_TIMEOUT')
      expect(err.statusCode).toBe(503)
      expect(err.message).toMatch(/within its time budget of 50 ms .*narrow it/)
      process.stdout.write(`reader-pool: timed-out read answered after ${answeredMs.toFixed(0)} ms (deadline 50 ms)\n`)
      // While the terminated worker finishes its step no second one starts (threads ≤ 2 × workers);
      // then a replacement answers the next reads (a cheap one well within 50 ms once started).
      const pool = (store as unknown as { pool: { size: number, terminating: number, lastTerminationMs?: number } }).pool
      expect(pool.size + pool.terminating).toBeLessThanOrEqual(2)
      await expect.poll(cheap, { timeout: 20_000, interval: 100 }).toBeGreaterThan(0)
      // A page decodes a 4,096-event block: on a fresh worker under load that may pass 50 ms too.
      await expect.poll(async () => await store.search({ size: 1 }).then((p) => p.events.length, () => -1), { timeout: 20_000, interval: 100 }).toBe(1)
      process.stdout.write(`reader-pool: replacement answered after ${(performance.now() - t0).toFixed(0)} ms\n`)
      await vi.waitFor(() => { expect(pool.lastTerminationMs).toBeDefined() }, { timeout: 30_000 })
      process.stdout.write(`reader-pool: the terminated worker stopped ${pool.lastTerminationMs?.toFixed(0) ?? '?'} ms after terminate() (SQLite finishes its step first)\n`)
    } finally {
      await store.close()
    }
  })

  it('reads beyond the queue bound are refused KEATRAIL_ERR_QUERY_BUSY (503); the queued ones are answered', async () => {
    const store = open({ workers: 1, maxQueued: 1 })
    try {
      await store.count({}) // the worker is up: the next read runs at once
      const running = store.count({ where: HEAVY })
      const queued = store.count({})
      const refused = await codeOf(store.count({}))
      expect(refused.code).toBe('KEATRAIL_ERR_QUERY_BUSY')
      expect(refused.statusCode).toBe(503)
      expect(await running).toBe(EVENTS)
      expect(await queued).toBe(EVENTS)
    } finally {
      await store.close()
    }
  })

  it('health counts on a reader and stays ready while the readers are busy with queries', async () => {
    const store = open({ workers: 1, maxQueued: 1 })
    try {
      // The count runs in the background: health never waits for it.
      await expect.poll(async () => await store.health(), { timeout: 20_000, interval: 50 }).toEqual({ ok: true, detail: `${path}: ${EVENTS} events` })
      const running = store.count({ where: HEAVY })
      const queued = store.count({})
      // Its count is refused (the queue is full): the last one is reported.
      expect(await store.health()).toEqual({ ok: true, detail: `${path}: ${EVENTS} events` })
      await Promise.all([running, queued])
    } finally {
      await store.close()
    }
  })

  it('M2: many concurrent health checks (/readyz) issue at most one count, never queued behind queries, and reuse it', async () => {
    const store = open({ workers: 1, maxQueued: 4 })
    const pool = (store as unknown as { pool: { run: (op: string, args: unknown[]) => Promise<unknown> } }).pool
    const ops: string[] = []
    const run = pool.run.bind(pool)
    pool.run = async (op, args) => { ops.push(op); return await run(op, args) }
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, async () => await store.health()))
      expect(answers.every((a) => a.ok)).toBe(true)
      expect(ops.filter((o) => o === 'count')).toHaveLength(1)
      await vi.waitFor(async () => { expect((await store.health()).detail).toBe(`${path}: ${EVENTS} events`) }, { timeout: 20_000, interval: 50 })
      // Within HEALTH_COUNT_MAX_AGE_MS (10 s) the count is reused: no new read.
      await Promise.all(Array.from({ length: 100 }, async () => await store.health()))
      expect(ops).toEqual(['count'])
      // While a heavy query holds the only reader, health still answers at once from the last count.
      const heavy = store.count({ where: HEAVY })
      expect(await store.health()).toEqual({ ok: true, detail: `${path}: ${EVENTS} events` })
      await heavy
    } finally {
      await store.close()
    }
  })

  it('lease histories run on the workers too: answers as on the store\'s own connection, within the readers\' deadline', async () => {
    const s = shape(EVENTS)
    const asks = Array.from({ length: 20 }, (_, i) => ({ address: ip((i * 37) % s.addresses), at: T0 + i * 997_000, mac: mac((i * 37) % s.addresses, 0) }))
    const answers = async (store: SqliteStore): Promise<unknown[]> => {
      const out: unknown[] = []
      for (const q of asks) {
        const r = parseAddressOrPrefix(q.address)
        out.push(await store.leases.intervalsAt(r, q.at), await store.leases.neighbours(r, q.at), await store.leases.intervals({ address: q.address }), await store.leases.intervals({ mac: q.mac }))
      }
      return out
    }
    const here = open({ workers: 0 })
    let expected: unknown[]
    try {
      expected = await answers(here)
    } finally {
      await here.close()
    }
    expect(expected.filter((a) => Array.isArray(a) && a.length > 0).length).toBeGreaterThan(40)
    const pooled = open({ workers: 1 })
    try {
      expect(await answers(pooled)).toEqual(expected)
      // Seeding's batch of histories: one read, the same answers.
      const qs = asks.flatMap((q) => [{ address: q.address }, { mac: q.mac }])
      const one = await Promise.all(qs.map(async (q) => await pooled.leases.intervals(q)))
      expect(await pooled.leases.intervalsMany(qs)).toEqual(one)
    } finally {
      await pooled.close()
    }
    // A read on a worker is bounded by its deadline (on the store's connection nothing could stop it):
    // 1 ms is less than a worker takes to start.
    const hurried = open({ workers: 1, queryTimeoutMs: 1 })
    try {
      const err = await codeOf(hurried.leases.intervals({ address: asks[0]?.address as string }))
      expect(err.code).toBe('KEATRAIL_ERR_QUERY_TIMEOUT')
    } finally {
      await hurried.close()
    }
  })

  it('reader errors keep their codes across the thread: a bad cursor is 400', async () => {
    const store = open()
    try {
      const err = await codeOf(store.search({ cursor: 'not-a-cursor' }))
      expect(err.code).toBe('KEATRAIL_ERR_CURSOR_INVALID')
      expect(err.statusCode).toBe(400)
    } finally {
      await store.close()
    }
  })

  it('histograms refuse an interval whose µs overflow and more than 10,000 buckets (KEATRAIL_ERR_QUERY_BUCKETS, 400)', async () => {
    for (const readers of [{}, { workers: 0 }]) {
      const store = open(readers)
      try {
        // interval=999999999d
        const overflow = await codeOf(store.histogram({}, 999_999_999 * 86_400_000))
        expect(overflow.code).toBe('KEATRAIL_ERR_QUERY_BUCKETS')
        expect(overflow.statusCode).toBe(400)
        // 50k events 3 s apart or more: one bucket per second is far more than 10,000.
        const many = await codeOf(store.histogram({}, 1000))
        expect(many.code).toBe('KEATRAIL_ERR_QUERY_BUCKETS')
        expect(many.message).toMatch(/more than 10000 buckets/)
        const hours = await store.histogram({}, 3_600_000)
        expect(hours.reduce((n, b) => n + b.count, 0)).toBe(EVENTS)
      } finally {
        await store.close()
      }
    }
  })
})
