import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { SqliteRowStore } from '../../src/store/sqlite/row-store.js'
import { isoToMicros } from '../../src/store/time.js'
import { MAX_PAGE_BYTES, type EventQuery, type Store } from '../../src/store/types.js'
import { engineStore, searchEngines } from '../helpers/engines.js'
import { parseBuffer, plainCopy, readFixture } from '../helpers/fixtures.js'

// One contract, every store: the same real Kea events written to each, and every answer
// compared with the ground truth computed here from the events themselves.

const FIXTURES = [
  ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'],
  ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-a'],
  ['captured/kea-dhcp4-INFO-file.log', 'kea-b'],
  ['captured/kea-dhcp6-INFO-file.log', 'kea-b']
] as const

/** `rederivable`: the events are marked so (the block store keeps their raw records only). */
async function fixtureEvents (rederivable: boolean): Promise<KeaEvent[]> {
  const all: KeaEvent[] = []
  for (const [file, host] of FIXTURES) {
    const { events } = await parseBuffer(readFixture(file), { host, path: file, rederivable })
    all.push(...events.map(plainCopy))
  }
  return all
}

const micros = (e: KeaEvent): number => isoToMicros(e['@timestamp'])
function sortKey (a: KeaEvent, b: KeaEvent): number {
  return micros(a) - micros(b) || (a.event.id < b.event.id ? -1 : a.event.id > b.event.id ? 1 : 0)
}

function matches (e: KeaEvent, q: EventQuery): boolean {
  const t = Date.parse(e['@timestamp'])
  if (q.from !== undefined && t < q.from) return false
  if (q.to !== undefined && t >= q.to) return false
  if (q.text !== undefined) {
    for (const w of q.text.split(/\s+/).filter(Boolean)) if (!new RegExp(`(^|[^A-Za-z0-9_])${w}($|[^A-Za-z0-9_])`, 'i').test(e.message)) return false
  }
  const f = q.filters ?? {}
  const has = (values: ReadonlyArray<string | number> | undefined, v: unknown): boolean => values === undefined || values.map(String).includes(String(v))
  return has(f.code, e.event.code) && has(f.action, e.event.action) && has(f.level, e.log.level) && has(f.host, e.host?.name) &&
    has(f.dataset, e.event.dataset) && has(f.mac, e.client?.mac) && has(f.duid, e.kea.duid) && has(f.client_id, e.kea.client_id) &&
    (f.ip === undefined || (e.related?.ip ?? []).some((ip) => f.ip?.includes(ip)))
}

async function allPages (store: Store, q: EventQuery, sort: 'asc' | 'desc', size: number): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | undefined
  for (let page = 0; page < 1000; page++) {
    const res = await store.search({ ...q, sort, size, ...(cursor === undefined ? {} : { cursor }) })
    ids.push(...res.events.map((e) => e.event.id))
    cursor = res.cursor
    if (cursor === undefined) break
  }
  return ids
}

interface Kind { name: string, skip: string, make: () => Promise<Store>, rederivable?: boolean }

const kinds: Kind[] = [
  {
    name: 'sqlite, documents re-derived from raw records',
    skip: '',
    rederivable: true,
    make: async () => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-store-')), 'keatrail.db') })
  },
  {
    name: 'sqlite, documents stored',
    skip: '',
    make: async () => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-store-')), 'keatrail.db') })
  },
  {
    // What a keatrail without zstd-napi writes (and reads), and `compression: deflate`.
    name: 'sqlite, deflate, documents re-derived from raw records',
    skip: '',
    rederivable: true,
    make: async () => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-store-')), 'keatrail.db'), compression: 'deflate' })
  },
  {
    name: 'sqlite rows',
    skip: '',
    make: async () => new SqliteRowStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-store-')), 'keatrail.db') })
  },
  ...searchEngines().map((engine): Kind => ({
    name: engine.name,
    skip: engine.skip,
    make: async () => {
      const s = engineStore(engine, { namespace: `contract${Date.now().toString(36)}`, refresh: true })
      await s.ensureTemplates()
      return s
    }
  }))
]

for (const kind of kinds) {
  describe.skipIf(kind.skip !== '')(`store contract: ${kind.name}${kind.skip === '' ? '' : ` (skipped: ${kind.skip})`}`, () => {
    let store: Store
    let events: KeaEvent[]

    beforeAll(async () => {
      events = await fixtureEvents(kind.rederivable === true)
      store = await kind.make()
      let written = 0
      for (let i = 0; i < events.length; i += 400) written += (await store.write(events.slice(i, i + 400))).written
      expect(written).toBe(events.length)
    }, 120_000)
    afterAll(async () => { await store?.close() })

    it('holds every event once, and a replay adds nothing', async () => {
      expect(await store.count()).toBe(events.length)
      const again = await store.write(events)
      expect(again).toEqual({ written: 0, duplicates: events.length, deadLettered: 0 })
      expect(await store.count()).toBe(events.length)
    })

    it('returns an event by id exactly as written', async () => {
      for (const e of [events[0]!, events[events.length - 1]!, events.find((x) => x.event.action === 'allocate')!]) {
        expect(await store.get(e.event.id)).toEqual(e)
      }
      expect(await store.get('no-such-id')).toBeUndefined()
    })

    it('returns several events by id in the order asked, skipping unknown ids', async () => {
      const pick = [events[events.length - 1]!, events[0]!, events.find((x) => x.event.action === 'allocate')!]
      const ids = [pick[0]!.event.id, 'no-such-id', pick[1]!.event.id, pick[2]!.event.id, pick[0]!.event.id]
      expect(await store.getMany(ids)).toEqual(pick)
      expect(await store.getMany([])).toEqual([])
    })

    it('pages through everything in a stable order, both directions', async () => {
      const asc = [...events].sort(sortKey).map((e) => e.event.id)
      expect(await allPages(store, {}, 'asc', 97)).toEqual(asc)
      expect(await allPages(store, {}, 'desc', 250)).toEqual([...asc].reverse())
    })

    const queries: Array<[string, (ev: KeaEvent[]) => EventQuery]> = [
      ['an action', () => ({ filters: { action: ['allocate'] } })],
      ['two message IDs', () => ({ filters: { code: ['DHCP6_PD_LEASE_ALLOC', 'DHCP4_RELEASE'] } })],
      ['a level and a host', () => ({ filters: { level: ['info'], host: ['kea-b'] } })],
      ['a dataset', () => ({ filters: { dataset: ['kea.dhcp6'] } })],
      ['a MAC', (ev) => ({ filters: { mac: [ev.find((e) => e.client?.mac !== undefined)!.client!.mac!] } })],
      ['a DUID', (ev) => ({ filters: { duid: [ev.find((e) => e.kea.duid !== undefined)!.kea.duid!] } })],
      ['an address (related.ip)', () => ({ filters: { ip: ['192.0.2.10', '2001:db8:1::100'] } })],
      ['free text', () => ({ text: 'released properly' })],
      ['free text and a filter', () => ({ text: 'allocated', filters: { dataset: ['kea.dhcp4'] } })],
      ['a time range', (ev) => {
        const times = ev.map((e) => Date.parse(e['@timestamp'])).sort((a, b) => a - b)
        return { from: times[Math.floor(times.length / 4)]!, to: times[Math.floor(times.length / 2)]! }
      }]
    ]
    for (const [name, build] of queries) {
      it(`finds exactly the events of ${name}`, async () => {
        const q = build(events)
        const want = events.filter((e) => matches(e, q)).sort(sortKey).map((e) => e.event.id)
        expect(want.length).toBeGreaterThan(0)
        expect(await store.count(q)).toBe(want.length)
        expect(await allPages(store, q, 'asc', 50)).toEqual(want)
        const first = await store.search({ ...q, size: 10 })
        expect(first.total).toEqual({ value: want.length, relation: 'eq' })
      })
    }

    it('counts over time in the same buckets', async () => {
      const interval = 60_000
      const want = new Map<number, number>()
      for (const e of events) {
        const key = Math.floor(Date.parse(e['@timestamp']) / interval) * interval
        want.set(key, (want.get(key) ?? 0) + 1)
      }
      expect(await store.histogram({}, interval)).toEqual([...want.entries()].sort((a, b) => a[0] - b[0]).map(([key, count]) => ({ key, count })))
    })

    it('ranks the top message IDs and addresses the same way', async () => {
      const tally = (values: Array<string | undefined>): Array<{ value: string, count: number }> => {
        const m = new Map<string, number>()
        for (const v of values) if (v !== undefined) m.set(v, (m.get(v) ?? 0) + 1)
        return [...m.entries()].map(([value, count]) => ({ value, count }))
          .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
      }
      expect(await store.top('code', {}, 5)).toEqual(tally(events.map((e) => e.event.code)).slice(0, 5))
      const leases = { filters: { action: ['allocate'] } }
      expect(await store.top('ip', leases, 8)).toEqual(tally(events.filter((e) => e.event.action === 'allocate').flatMap((e) => e.related?.ip ?? [])).slice(0, 8))
    })

    it('rejects a cursor that is not its own', async () => {
      await expect(store.search({ cursor: 'bm90LWEtY3Vyc29y' })).rejects.toMatchObject({ code: 'KEATRAIL_ERR_CURSOR_INVALID' })
    })

    it('reports health', async () => {
      expect((await store.health()).ok).toBe(true)
    })

    it('stops a page of outsized events at MAX_PAGE_BYTES, the rest behind its cursor; getMany too', async () => {
      // H1: ~120 KB events (a flood of 60 KB syslog frames), in a time range of their own.
      const base = events[0]!
      const t0 = Date.UTC(2030, 0, 1)
      const big = Array.from({ length: 150 }, (_, i): KeaEvent => {
        const text = `flood ${i} ${'x'.repeat(60_000)}`
        return { ...base, '@timestamp': new Date(t0 + i * 1000).toISOString(), message: text, event: { ...base.event, id: `big-${kind.name}-${i}`, original: text } }
      })
      for (let i = 0; i < big.length; i += 25) await store.write(big.slice(i, i + 25))
      const one = JSON.stringify(big[0]).length
      const range = { from: t0, to: t0 + 1000 * big.length }
      const seen: string[] = []
      let cursor: string | undefined
      let pages = 0
      for (; pages < 50; pages++) {
        const page = await store.search({ ...range, size: 1000, sort: 'asc', ...(cursor === undefined ? {} : { cursor }) })
        expect(JSON.stringify(page.events).length).toBeLessThanOrEqual(MAX_PAGE_BYTES + one)
        seen.push(...page.events.map((e) => e.event.id))
        cursor = page.cursor
        if (cursor === undefined) break
      }
      expect(pages).toBeGreaterThan(0)
      expect(seen).toEqual(big.map((e) => e.event.id))
      const got = await store.getMany(big.map((e) => e.event.id))
      expect(got.length).toBeLessThan(big.length)
      expect(JSON.stringify(got).length).toBeLessThanOrEqual(MAX_PAGE_BYTES + one)
      expect(got.map((e) => e.event.id)).toEqual(big.slice(0, got.length).map((e) => e.event.id))
    }, 120_000)
  })
}
