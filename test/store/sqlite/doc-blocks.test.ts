import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../../src/parse/event.js'
import { BLOCK_EVENTS } from '../../../src/store/sqlite/doc-blocks.js'
import { SqliteRowStore as SqliteStore } from '../../../src/store/sqlite/row-store.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// The row layout (store.layout: rows) keeps event documents deflated in blocks of consecutive rowids: every
// event must read back exactly as written through replays, retention and rowid reuse.

const dir = mkdtempSync(join(tmpdir(), 'kt-docs-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

async function fixtureEvents (): Promise<KeaEvent[]> {
  return (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { timeZone: 'UTC' })).events
}

function blocks (path: string): Array<{ first: number, n: number }> {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare('SELECT first, n FROM event_docs ORDER BY first').all() as Array<{ first: number, n: number }>
  } finally {
    db.close()
  }
}

describe('sqlite event documents in blocks', () => {
  it('reads every event back as written, through a partial replay, in blocks of at most BLOCK_EVENTS', async () => {
    const path = join(dir, 'replay.db')
    const store = new SqliteStore({ path })
    const events = await fixtureEvents()
    await store.write(events.filter((_, i) => i % 3 === 0))
    // Every third event is already there: the written ones still get consecutive rowids.
    expect(await store.write(events)).toMatchObject({ written: events.length - Math.ceil(events.length / 3) })
    for (const e of events) expect(await store.get(e.event.id)).toEqual(e)
    const page = await store.search({ size: 1000, sort: 'asc' })
    expect(page.events).toHaveLength(events.length)
    const bs = blocks(path)
    expect(bs.every((b) => b.n >= 1 && b.n <= BLOCK_EVENTS)).toBe(true)
    expect(bs.reduce((a, b) => a + b.n, 0)).toBe(events.length)
    await store.close()
  })

  it('drops the blocks retention emptied and keeps the ones still read', async () => {
    const path = join(dir, 'retention.db')
    const store = new SqliteStore({ path, retention: { maxAgeDays: 1 } })
    const events = await fixtureEvents()
    const old = events.slice(0, 40).map((e) => ({ ...e, '@timestamp': '2020-01-01T00:00:00.000Z', event: { ...e.event, id: `old-${e.event.id}` } }))
    // Old and new events share blocks at the boundary: that block must stay.
    await store.write([...old, ...events])
    const before = blocks(path).length
    expect(store.applyRetention(Date.parse((events[0] as KeaEvent)['@timestamp']) + 3_600_000)).toBe(40)
    const after = blocks(path)
    expect(after.length).toBe(before - Math.floor(40 / BLOCK_EVENTS))
    for (const e of events) expect(await store.get(e.event.id)).toEqual(e)
    await store.close()
  })

  it('reads new events correctly when rowids are reused after every event was deleted', async () => {
    const path = join(dir, 'reuse.db')
    const store = new SqliteStore({ path, retention: { maxAgeDays: 1 } })
    const events = await fixtureEvents()
    const old = events.map((e) => ({ ...e, '@timestamp': '2020-01-01T00:00:00.000Z', event: { ...e.event, id: `old-${e.event.id}` } }))
    await store.write(old)
    store.applyRetention(Date.parse((events[0] as KeaEvent)['@timestamp']))
    expect(await store.count()).toBe(0)
    expect(blocks(path)).toEqual([])
    await store.write(events.slice(0, 5))
    await store.write(events.slice(5))
    for (const e of events) expect(await store.get(e.event.id)).toEqual(e)
    await store.close()
  })

  it('does not serve a block another process replaced after rowid reuse (keatrail serve beside keatrail run)', async () => {
    const path = join(dir, 'two.db')
    const writer = new SqliteStore({ path, retention: { maxAgeDays: 1 } })
    const reader = new SqliteStore({ path })
    const events = await fixtureEvents()
    const old = events.map((e) => ({ ...e, '@timestamp': '2020-01-01T00:00:00.000Z', event: { ...e.event, id: `old-${e.event.id}` } }))
    await writer.write(old)
    // The reader caches the old events' blocks.
    expect((await reader.search({ size: 1000, sort: 'asc' })).events).toHaveLength(old.length)
    writer.applyRetention(Date.parse((events[0] as KeaEvent)['@timestamp']))
    await writer.write(events)
    const byId = new Map(events.map((e) => [e.event.id, e]))
    const page = (await reader.search({ size: 1000, sort: 'asc' })).events
    expect(page).toHaveLength(events.length)
    for (const e of page) expect(e).toEqual(byId.get(e.event.id))
    for (const e of events.slice(0, 20)) expect(await reader.get(e.event.id)).toEqual(e)
    await reader.close()
    await writer.close()
  })
})
