import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, inject, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'
import { freePort, Outage } from '../helpers/outage.js'

async function someEvents (file = 'kea-2.2.0-dhcp4-INFO-full.log'): Promise<KeaEvent[]> {
  return (await parseBuffer(readFixture(file))).events.map((e) => JSON.parse(JSON.stringify(e)) as KeaEvent)
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kt-faults-'))

const esUrl = inject('esUrl')
describe.skipIf(esUrl === '')(`elasticsearch store faults${esUrl === '' ? ` (skipped: ${inject('esSkipReason')})` : ''}`, () => {
  it('dead-letters a document the mapping rejects, with the reason, and keeps the rest', async () => {
    const dlq = new DeadLetterStore(join(tmp(), 'deadletter.db'))
    const store = new ElasticsearchStore({ url: esUrl, namespace: `dlq${Date.now().toString(36)}`, refresh: true }, { deadLetters: dlq })
    await store.ensureTemplates()
    const events = (await someEvents()).slice(0, 20)
    const bad = events[5]!
    bad.client = { ...bad.client, ip: 'not-an-address' }
    const res = await store.write(events)
    expect(res).toEqual({ written: 19, duplicates: 0, deadLettered: 1 })
    const [entry] = dlq.list()
    expect(entry).toMatchObject({ store: 'elasticsearch', eventId: bad.event.id, reason: expect.stringMatching(/^400 document_parsing_exception|^400 mapper_parsing_exception/) })
    expect(entry!.event.client?.ip).toBe('not-an-address')
    expect(await store.count()).toBe(19)
    await store.close()
    dlq.close()
  })

  it('rides out an outage in the middle of an import: every event stored exactly once', async () => {
    const namespace = `outage${Date.now().toString(36)}`
    const proxy = new Outage(await freePort(), new URL(esUrl))
    await proxy.up()
    const retries: number[] = []
    const store = new ElasticsearchStore({ url: `http://127.0.0.1:${proxy.port}`, namespace, retry: { initialMs: 100, maxMs: 800 }, requestTimeoutMs: 5000 },
      { onRetry: (_e, attempt) => retries.push(attempt) })
    await store.ensureTemplates()
    const events = await someEvents('kea-2.2.0-dhcp6-INFO-full.log')
    const batches = [events.slice(0, 120), events.slice(120, 240), events.slice(240)]
    let written = 0
    let duplicates = 0
    for (const [i, batch] of batches.entries()) {
      if (i === 1) {
        await proxy.down()
        setTimeout(() => { void proxy.up() }, 1500)
      }
      const r = await store.write(batch)
      written += r.written
      duplicates += r.duplicates
    }
    expect(retries.length).toBeGreaterThan(0)
    expect(written + duplicates).toBe(events.length)
    const direct = new ElasticsearchStore({ url: esUrl, namespace })
    await direct.refresh()
    expect(await direct.count()).toBe(events.length)
    await store.close()
    await direct.close()
    await proxy.down()
  }, 60_000)
})

describe('sqlite store faults', () => {
  it('fails a batch it cannot write with a code, acknowledging none of it', async () => {
    const path = join(tmp(), 'keatrail.db')
    const store = new SqliteStore({ path, busyTimeoutMs: 100 })
    const events = await someEvents()
    await store.write(events.slice(0, 10))
    const other = new Database(path)
    other.prepare('BEGIN IMMEDIATE').run()
    await expect(store.write(events.slice(10, 50))).rejects.toMatchObject({ code: 'KEATRAIL_ERR_STORE_WRITE', message: expect.stringContaining('SQLITE_BUSY') })
    other.prepare('ROLLBACK').run()
    other.close()
    expect(await store.count()).toBe(10)
    expect(await store.write(events.slice(10, 50))).toEqual({ written: 40, duplicates: 0, deadLettered: 0 })
    await store.close()
  })

  it('drops old events by age and keeps search, addresses and text consistent', async () => {
    const store = new SqliteStore({ path: join(tmp(), 'k.db'), retention: { maxAgeDays: 1 } })
    const events = await someEvents()
    const old = events.slice(0, 100).map((e) => ({ ...e, '@timestamp': '2020-01-01T00:00:00.000Z', event: { ...e.event, id: `old-${e.event.id}` } }))
    await store.write([...old, ...events])
    const now = Date.parse(events[0]!['@timestamp']) + 3_600_000
    expect(store.applyRetention(now)).toBe(100)
    expect(await store.count()).toBe(events.length)
    expect(await store.count({ filters: { ip: ['192.0.2.10'] } })).toBe(events.filter((e) => e.related?.ip?.includes('192.0.2.10')).length)
    expect((await store.search({ text: 'allocated', size: 1000 })).events.every((e) => !e.event.id.startsWith('old-'))).toBe(true)
    await store.close()
  })

  it('refuses a database written by a newer keatrail', async () => {
    const path = join(tmp(), 'k.db')
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    expect(() => new SqliteStore({ path })).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_STORE_SCHEMA' }))
  })

  it('names the bad field of its config', () => {
    expect(() => new SqliteStore({ path: '/tmp/x.db', synchronous: 'sometimes' as 'full' })).toThrow(expect.objectContaining({
      code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringContaining('store.sqlite.synchronous')
    }))
  })
})

describe('sqlite retention by size', () => {
  it('deletes the oldest events until the database fits, keeping the newest', async () => {
    // 2 MiB: the schema's ~50 tables and indexes take ~0.9 MiB empty (16 KiB pages).
    const store = new SqliteStore({ path: join(tmp(), 'k.db'), retention: { maxSizeMiB: 2 } })
    const base = await someEvents('kea-2.2.0-dhcp6-INFO-full.log')
    // A copy an hour apart each: retention by size forgets the lease history before the oldest event left.
    const many = Array.from({ length: 120 }, (_, r) => base.map((e) => ({ ...e, '@timestamp': new Date(Date.parse(e['@timestamp']) + r * 3_600_000).toISOString(), event: { ...e.event, id: `${r}-${e.event.id}` } }))).flat()
    // In batches of the pipeline's size: each is one link of the tamper-evidence chain, whose
    // removed records keep a 32-byte leaf until the whole link is gone (docs/ARCHITECTURE.md).
    for (let i = 0; i < many.length; i += 5000) await store.write(many.slice(i, i + 5000))
    expect(store.usedBytes()).toBeGreaterThan(2 * 1024 * 1024)
    const deleted = store.applyRetention()
    expect(deleted).toBeGreaterThan(0)
    expect(store.usedBytes()).toBeLessThanOrEqual(2 * 1024 * 1024)
    const left = await store.search({ sort: 'asc', size: 1 })
    const newest = [...many].sort((a, b) => Date.parse(b['@timestamp']) - Date.parse(a['@timestamp']))[0]!
    expect(await store.get(newest.event.id)).toBeDefined()
    expect(Date.parse(left.events[0]!['@timestamp'])).toBeGreaterThanOrEqual(Date.parse([...many].sort((a, b) => Date.parse(a['@timestamp']) - Date.parse(b['@timestamp']))[0]!['@timestamp']))
    expect(await store.count()).toBe(many.length - deleted)
    await store.close()
  })
})

describe.skipIf(process.getuid?.() !== 0 && process.env.CI !== 'true')('sqlite store on a full disk', () => {
  it('fails the batch with a code, acknowledges none of it, and recovers when space returns', async () => {
    const { execFileSync } = await import('node:child_process')
    const { rmSync, writeFileSync: write } = await import('node:fs')
    const mnt = tmp()
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt])
    try {
      const store = new SqliteStore({ path: join(mnt, 'k.db') })
      const events = await someEvents('kea-2.2.0-dhcp6-INFO-full.log')
      await store.write(events.slice(0, 50))
      const ballast = join(mnt, 'ballast')
      // Fill the rest of the file system.
      try { write(ballast, Buffer.alloc(3 * 1024 * 1024)) } catch { /* ENOSPC: full, as intended */ }
      const many = Array.from({ length: 20 }, (_, r) => events.map((e) => ({ ...e, event: { ...e.event, id: `${r}-${e.event.id}` } }))).flat()
      await expect(store.write(many)).rejects.toMatchObject({ code: 'KEATRAIL_ERR_STORE_WRITE', message: expect.stringMatching(/SQLITE_FULL|disk|full/i) })
      expect(await store.count()).toBe(50)
      rmSync(ballast, { force: true })
      expect((await store.write(events.slice(50, 100))).written).toBe(50)
      expect(await store.count()).toBe(100)
      await store.close()
    } finally {
      execFileSync('umount', ['-l', mnt])
    }
  })
})
