import { describe, expect, it } from 'vitest'
import { apiKeyHash, buildApp } from '../../src/api/app.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

// A cursor belongs to its query. It was bound to the query's resolved times, so with a relative
// range (`from=now-30d`, the UI's presets) the next page resolved another millisecond and every
// "More" was refused as a cursor of another query.

const KEY = 'kt_cursor-key-0123456789abcdef'

/** Resolves once the clock has moved on a few milliseconds. */
async function laterMillisecond (): Promise<void> {
  const t = Date.now()
  await expect.poll(() => Date.now(), { interval: 1 }).toBeGreaterThan(t + 2)
}

describe('cursors of relative time ranges', () => {
  it('the next page of events and of snapshots is answered with from=now-…', async () => {
    const store = new SqliteStore({ path: ':memory:' })
    const now = Date.now()
    const events = (await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-a', path: 'x' })).events
      .map((e, i) => ({ ...e, '@timestamp': new Date(now - 3_600_000 + i * 1000).toISOString() }))
    await store.write(events)
    await store.snapshots.write(Array.from({ length: 5 }, (_, i) => ({ '@timestamp': new Date(now - 600_000 + i * 30_000).toISOString(), id: `kea-a|dhcp4|${i}`, server: 'kea-a', service: 'dhcp4', state: 'up', subnets: [], shared_networks: [], totals: { total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 }, packets: {} })))
    const app = await buildApp({ store, api: { keys: [{ name: 'r', sha256: apiKeyHash(KEY) }] } })
    const get = async (url: string): Promise<{ status: number, body: { cursor?: string, events?: unknown[], snapshots?: unknown[] } }> => {
      const r = await app.inject({ url, headers: { authorization: `Bearer ${KEY}` } })
      return { status: r.statusCode, body: r.json() }
    }
    const first = await get('/api/v1/events?from=now-2h&size=3')
    expect(first.body.cursor).toBeDefined()
    await laterMillisecond() // now-2h resolves anew
    const second = await get(`/api/v1/events?from=now-2h&size=3&cursor=${encodeURIComponent(first.body.cursor as string)}`)
    expect(second.status).toBe(200)
    expect(second.body.events).toHaveLength(3)
    const snaps = await get('/api/v1/snapshots?from=now-1h&size=2')
    await laterMillisecond()
    const more = await get(`/api/v1/snapshots?from=now-1h&size=2&cursor=${encodeURIComponent(snaps.body.cursor as string)}`)
    expect(more.status).toBe(200)
    expect(more.body.snapshots).toHaveLength(2)
    // Still bound to its query: another query refuses it.
    expect((await get(`/api/v1/events?from=now-3h&size=3&cursor=${encodeURIComponent(first.body.cursor as string)}`)).status).toBe(400)
    await app.close()
    await store.close()
  })
})
