import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apiKeyHash, buildApp } from '../../src/api/app.js'
import type { KeaSnapshot } from '../../src/kea/snapshot.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { MAX_PAGE_BYTES } from '../../src/store/types.js'

// Finding 1 of the third audit: `GET /api/v1/snapshots?size=10000` answered every snapshot at
// once (10,000 of 100 subnets: ~130 MB, out of memory in a 256 MiB heap; 1,000 of 1,000 subnets
// at the default size did the same), read on the main thread without a deadline (a subnet filter
// parsed every document: 0.8 s of the event loop per query). Now a page stops at MAX_PAGE_BYTES
// with a cursor for the rest, and pages are read on the reader workers.

const KEY = 'kt_test-reader-key-snapshot-pages'
const auth = { authorization: `Bearer ${KEY}` }
const T0 = Date.parse('2026-11-24T00:00:00Z')
/** Snapshots of 1,000 subnets (~131 KB each): 80 are ~10.5 MB, more than one page holds. */
const BIG = 80
/** Snapshots of 100 subnets (~13 KB each) for the scans: every document is read. */
const SMALL = 3000

function snapshot (server: string, i: number, subnets: number): KeaSnapshot {
  const t = new Date(T0 + i * 30_000).toISOString()
  return {
    '@timestamp': t, id: `${server}|dhcp4|${t}`, server, service: 'dhcp4', state: 'up', version: '2.6.3',
    subnets: Array.from({ length: subnets }, (_, k) => ({ id: k + 1, subnet: `10.${k >> 8}.${k & 255}.0/24`, shared_network: `net-${k % 10}`, total: 254, assigned: 100, declined: 0, free: 154, utilization: 39.37 })),
    shared_networks: [], totals: { total: 254 * subnets, assigned: 100 * subnets, declined: 0, free: 154 * subnets, utilization: 39.37 }, packets: {}
  }
}

const dir = mkdtempSync(join(tmpdir(), 'kt-snapshot-pages-'))
const path = join(dir, 'keatrail.db')
let store: SqliteStore
let app: FastifyInstance

beforeAll(async () => {
  const seed = new SqliteStore({ path, synchronous: 'normal' })
  for (let i = 0; i < BIG; i += 10) await seed.snapshots.write(Array.from({ length: 10 }, (_, k) => snapshot('kea-big', i + k, 1000)))
  for (let i = 0; i < SMALL; i += 500) await seed.snapshots.write(Array.from({ length: 500 }, (_, k) => snapshot(k % 2 === 0 ? 'kea-a' : 'kea-b', i + k, 100)))
  await seed.close()
  store = new SqliteStore({ path })
  app = await buildApp({ store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }], rateLimit: { max: 100_000, windowMs: 60_000 } } })
}, 120_000)
afterAll(async () => {
  await app?.close()
  await store?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function get (url: string): Promise<{ status: number, body: string, json: { snapshots: KeaSnapshot[], cursor?: string, code?: string } }> {
  const r = await app.inject({ url, headers: auth })
  return { status: r.statusCode, body: r.body, json: r.json() }
}

describe('API: snapshot pages are bounded in bytes and read off the main thread', () => {
  it('size=10000 of 80 snapshots of 1,000 subnets: pages within MAX_PAGE_BYTES, the rest behind a cursor, every snapshot once and in order', async () => {
    const one = JSON.stringify(snapshot('kea-big', 0, 1000)).length
    const seen: string[] = []
    let url = '/api/v1/snapshots?server=kea-big&size=10000'
    let pages = 0
    for (;;) {
      const r = await get(url)
      expect(r.status).toBe(200)
      // The documents, the envelope and the cursor.
      expect(r.body.length).toBeLessThanOrEqual(MAX_PAGE_BYTES + 1000)
      expect(r.json.snapshots.length).toBeGreaterThan(0)
      seen.push(...r.json.snapshots.map((s) => s.id))
      pages++
      if (r.json.cursor === undefined) break
      expect(r.json.snapshots.length).toBe(Math.floor(MAX_PAGE_BYTES / one))
      url = `/api/v1/snapshots?server=kea-big&size=10000&cursor=${encodeURIComponent(r.json.cursor)}`
    }
    expect(pages).toBe(Math.ceil(BIG / Math.floor(MAX_PAGE_BYTES / one)))
    expect(seen).toEqual(Array.from({ length: BIG }, (_, i) => snapshot('kea-big', i, 1).id))
    // By size as well: 30 a page, the cursor going on where the last one stopped.
    const first = await get('/api/v1/snapshots?server=kea-a&size=30')
    expect(first.json.snapshots).toHaveLength(30)
    const second = await get(`/api/v1/snapshots?server=kea-a&size=30&cursor=${encodeURIComponent(first.json.cursor as string)}`)
    expect(second.json.snapshots.map((s) => s.id)).toEqual(Array.from({ length: 30 }, (_, i) => snapshot('kea-a', 60 + 2 * i, 1).id))
  })

  it('a page of the default size is 100 snapshots; a cursor fits only its own query; a bad subnet id is one coded 400', async () => {
    const page = await get('/api/v1/snapshots?service=dhcp4&from=2026-11-24T00:00:00Z')
    expect(page.json.snapshots).toHaveLength(100)
    const cursor = page.json.cursor as string
    expect(cursor).toBeDefined()
    const other = await get(`/api/v1/snapshots?server=kea-b&cursor=${encodeURIComponent(cursor)}`)
    expect([other.status, other.json.code]).toEqual([400, 'KEATRAIL_ERR_CURSOR_INVALID'])
    const bad = await get('/api/v1/snapshots?subnet_id=-1')
    expect([bad.status, bad.json.code]).toEqual([400, 'KEATRAIL_ERR_VALIDATION'])
  })

  it('a subnet filter reads every document on a reader worker: the event loop keeps turning, and the readers\' deadline applies; latest answers without them', async () => {
    await get('/api/v1/snapshots?size=1') // a worker is up
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 5)
    let r: Awaited<ReturnType<typeof get>>
    try {
      r = await get('/api/v1/snapshots?subnet_id=99999&size=1')
    } finally {
      clearInterval(timer)
    }
    expect([r.status, r.json.snapshots]).toEqual([200, []])
    // On the main thread the scan ran synchronously: not one tick before it returned.
    expect(ticks).toBeGreaterThanOrEqual(3)
    expect((await get('/api/v1/snapshots?subnet_id=100&server=kea-b&size=2')).json.snapshots.map((s) => s.id)).toEqual([snapshot('kea-b', 1, 1).id, snapshot('kea-b', 3, 1).id])

    // A store whose readers have 1 ms (less than a worker takes to start): 503, coded.
    const hurried = new SqliteStore({ path, readers: { workers: 1, queryTimeoutMs: 1 } })
    const fast = await buildApp({ store: hurried, api: { rateLimit: { timeoutPenaltyMs: 0 } } })
    try {
      const late = await fast.inject({ url: '/api/v1/snapshots?subnet_id=99999' })
      expect([late.statusCode, late.json().code]).toEqual([503, 'KEATRAIL_ERR_QUERY_TIMEOUT'])
      // The newest of each server and service (the UI's Servers tab) is a few index seeks per
      // pair on the store's connection, not a pass over every row: answered here.
      const latest = (await fast.inject({ url: '/api/v1/snapshots/latest' })).json<{ snapshots: KeaSnapshot[] }>()
      expect(latest.snapshots.map((s) => s.id)).toEqual([snapshot('kea-a', SMALL - 2, 1).id, snapshot('kea-b', SMALL - 1, 1).id, snapshot('kea-big', BIG - 1, 1).id])
      expect((await fast.inject({ url: '/api/v1/snapshots/latest?server=kea-b' })).json<{ snapshots: KeaSnapshot[] }>().snapshots.map((s) => s.id)).toEqual([snapshot('kea-b', SMALL - 1, 1).id])
      expect((await fast.inject({ url: '/api/v1/snapshots/latest?server=kea-none' })).json<{ snapshots: KeaSnapshot[] }>().snapshots).toEqual([])
    } finally {
      await fast.close()
      await hurried.close()
    }
  })
})
