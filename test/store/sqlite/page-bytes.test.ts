import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/api/app.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { parseQuery } from '../../../src/query/parse.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import { MAX_PAGE_BYTES } from '../../../src/store/types.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// H1: a syslog flood of 60 KB frames stores ~120 KB events (message + event.original); one
// `size=1000` page of them (120 MB) exhausted a 256 MiB heap. A page now stops at
// MAX_PAGE_BYTES of documents and the rest follows behind its cursor.

const dir = mkdtempSync(join(tmpdir(), 'kt-pagebytes-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

const N = 300
const FRAME = 60_000

async function bigEvents (): Promise<KeaEvent[]> {
  const base = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { timeZone: 'UTC' })).events[0] as KeaEvent
  return Array.from({ length: N }, (_, i) => {
    const text = `flood ${i} ` + 'x'.repeat(FRAME)
    return {
      ...base,
      '@timestamp': new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
      message: text,
      event: { ...base.event, id: `big-${String(i).padStart(4, '0')}`, original: text },
      related: { ...(base.related ?? {}), ip: [`10.200.${i % 250}.1`] }
    } as KeaEvent
  })
}

describe('sqlite pages bounded in bytes', () => {
  const path = join(dir, 'big.db')
  let store: SqliteStore
  let events: KeaEvent[]

  it('answers size=1000 with at most MAX_PAGE_BYTES (+ one event) and a cursor; paging returns every event once', async () => {
    store = new SqliteStore({ path })
    events = await bigEvents()
    await store.write(events)
    const one = JSON.stringify(events[0]).length
    expect(N * one).toBeGreaterThan(3 * MAX_PAGE_BYTES)
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    for (; pages < 100; pages++) {
      const page = await store.search({ size: 1000, where: parseQuery('ip:10.200.0.0/16'), ...(cursor === undefined ? {} : { cursor }) })
      expect(JSON.stringify(page.events).length).toBeLessThanOrEqual(MAX_PAGE_BYTES + one)
      expect(page.events.length).toBeGreaterThan(0)
      seen.push(...page.events.map((e) => e.event.id))
      cursor = page.cursor
      if (cursor === undefined) break
    }
    expect(pages).toBeGreaterThan(2)
    expect(seen).toHaveLength(N)
    expect(new Set(seen).size).toBe(N)
    expect(seen).toEqual(events.map((e) => e.event.id).reverse())
  })

  it('the API answers GET /api/v1/events?size=1000 within the bound, and its cursor walks every event once', async () => {
    const app = await buildApp({ store })
    try {
      const one = JSON.stringify(events[0]).length
      const seen = new Set<string>()
      let cursor: string | undefined
      for (let i = 0; i < 100; i++) {
        const r = await app.inject({ url: `/api/v1/events?size=1000&q=${encodeURIComponent('ip:10.200.0.0/16')}${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}` })
        expect(r.statusCode).toBe(200)
        expect(r.body.length).toBeLessThanOrEqual(MAX_PAGE_BYTES + one + 4096)
        const body = r.json<{ events: Array<{ event: { id: string } }>, cursor?: string }>()
        for (const e of body.events) seen.add(e.event.id)
        cursor = body.cursor
        if (cursor === undefined) break
      }
      expect(seen.size).toBe(N)
    } finally {
      await app.close()
    }
  })

  it('getMany stops at MAX_PAGE_BYTES too, in the order of the ids asked', async () => {
    const ids = events.map((e) => e.event.id).reverse()
    const got = await store.getMany(ids)
    const one = JSON.stringify(events[0]).length
    expect(got.length).toBeGreaterThan(0)
    expect(got.length).toBeLessThan(N)
    expect(JSON.stringify(got).length).toBeLessThanOrEqual(MAX_PAGE_BYTES + one)
    expect(got.map((e) => e.event.id)).toEqual(ids.slice(0, got.length))
  })

  it('evidence lines (a lease answer\'s) stop at MAX_PAGE_BYTES of lines too, in the order asked', async () => {
    const ids = events.map((e) => e.event.id).reverse()
    const lines = await store.evidence(ids)
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.length).toBeLessThan(N)
    expect(lines.reduce((n, l) => n + l.line.length, 0)).toBeLessThanOrEqual(MAX_PAGE_BYTES)
    expect(lines.map((l) => l.id)).toEqual(ids.slice(0, lines.length))
    await store.close()
  })
})
