import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { apiKeyHash, buildApp } from '../../src/api/app.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { parseBuffer } from '../helpers/fixtures.js'

// Finding 6 of the third audit (admin key): 100,000 dead letters of ~2.1 KB, then
// `POST /api/v1/deadletter/retry?limit=100000` on `keatrail serve`: every entry read, parsed and
// sent in one write, out of memory in a 256 MiB heap; `GET /api/v1/deadletter` parsed every
// document of its page to answer their metadata.

const ADMIN = 'kt_test-admin-key-deadletter-bounds'
const admin = { authorization: `Bearer ${ADMIN}` }
const LINE = '2026-11-24 09:16:10.304 INFO  [kea-dhcp4.leases/1.1] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 4000 seconds'
const template = (await parseBuffer(`${LINE} ${'p'.repeat(1000)}\n`)).events[0] as KeaEvent
const event = (i: number): KeaEvent => ({ ...template, event: { ...template.event, id: `dl-${String(i).padStart(6, '0')}` } })

const dir = mkdtempSync(join(tmpdir(), 'kt-api-deadletter-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

describe('API: dead letters are retried in bounded steps and listed without their documents', () => {
  it('POST /deadletter/retry?limit=100000 writes 500 entries (or 4 MiB) at a time, each removed from the dead letters before the next is read', async () => {
    const dlq = new DeadLetterStore(join(dir, 'retry', 'deadletter.db'))
    const N = 2300
    for (let i = 0; i < N; i += 500) dlq.add('elasticsearch', Array.from({ length: Math.min(500, N - i) }, (_, k) => ({ event: event(i + k), reason: '400 mapper_parsing_exception' })))
    const real = new SqliteStore({ path: join(dir, 'retry', 'keatrail.db') })
    const writes: Array<{ n: number, bytes: number, held: number }> = []
    const store = new Proxy(real, {
      get: (t, k) => k === 'write'
        ? async (events: KeaEvent[]) => { writes.push({ n: events.length, bytes: events.reduce((n, e) => n + JSON.stringify(e).length, 0), held: dlq.count() }); return await t.write(events) }
        : Reflect.get(t, k)
    }) as Store
    const app = await buildApp({ store, deadLetters: dlq, api: { keys: [{ name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }] } })
    try {
      const r = await app.inject({ method: 'POST', url: '/api/v1/deadletter/retry?limit=100000', headers: admin })
      expect([r.statusCode, r.json()]).toEqual([200, { retried: N, written: N, duplicates: 0, deadLettered: 0, unreadable: 0, remaining: 0 }])
      expect(writes.map((w) => w.n)).toEqual([500, 500, 500, 500, 300])
      for (const w of writes) expect(w.bytes).toBeLessThanOrEqual(4 * 1024 * 1024)
      expect(writes.map((w) => w.held)).toEqual([N, N - 500, N - 1000, N - 1500, N - 2000])
      expect(await real.count()).toBe(N)
    } finally {
      await app.close()
      await real.close()
      dlq.close()
    }
  })

  it('GET /deadletter?limit=1000 answers from the entries\' columns: a document that cannot be parsed is listed, not a 500', async () => {
    const path = join(dir, 'list', 'deadletter.db')
    const dlq = new DeadLetterStore(path)
    dlq.add('elasticsearch', Array.from({ length: 1200 }, (_, i) => ({ event: event(i), reason: `refused ${i}` })))
    // A document cut short (as a damaged page would leave it): only a reader of the documents notices.
    const other = new Database(path)
    other.prepare('UPDATE deadletter SET doc = substr(doc, 1, 100) WHERE event_id = ?').run('dl-000500')
    other.close()
    const store = new SqliteStore({ path: ':memory:' })
    const app = await buildApp({ store, deadLetters: dlq, api: { keys: [{ name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }] } })
    try {
      const r = await app.inject({ url: '/api/v1/deadletter?limit=1000', headers: admin })
      expect(r.statusCode).toBe(200)
      const body = r.json<{ count: number, entries: Array<{ seq: number, event_id: string, reason: string }> }>()
      expect(body.count).toBe(1200)
      expect(body.entries).toHaveLength(1000)
      expect(body.entries[500]).toMatchObject({ event_id: 'dl-000500', reason: 'refused 500' })
      expect(Object.keys(body.entries[0] ?? {}).sort()).toEqual(['event_id', 'reason', 'seq', 'store', 'time'])
    } finally {
      await app.close()
      await store.close()
      dlq.close()
    }
  })
})
