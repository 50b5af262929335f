import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { FileSource } from '../../src/sources/file/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { readFixture } from '../helpers/fixtures.js'

interface Logged { code: string, msg: string }

async function runOnce (dir: string, store: SqliteStore, include: string[], expected: number, extra: Record<string, unknown> = {}): Promise<{ errors: Logged[], pipeline: Pipeline }> {
  const errors: Logged[] = []
  const log = { info: () => {}, error: (code: string, msg: string) => { errors.push({ code, msg }) } }
  const source = new FileSource({ type: 'file', name: 'k', include, timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 50, ...extra }, join(dir, 'state'), log)
  const pipeline = new Pipeline(store, { log })
  const stop = new AbortController()
  const run = pipeline.run([source], stop.signal)
  for (let i = 0; i < 200 && pipeline.counters.stored + pipeline.counters.duplicates < expected; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  await new Promise((resolve) => setTimeout(resolve, 100))
  stop.abort()
  await run
  return { errors, pipeline }
}

describe('file source faults', () => {
  it('skips a path that is a directory with a coded error, and keeps reading the others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-ff-'))
    mkdirSync(join(dir, 'kea-dhcp4.log.1'))
    writeFileSync(join(dir, 'kea-dhcp4.log'), readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const { errors } = await runOnce(dir, store, [join(dir, 'kea-dhcp4.log*')], 206)
    expect(await store.count()).toBe(206)
    expect(errors).toContainEqual({ code: 'KEATRAIL_ERR_SOURCE', msg: expect.stringContaining('directory') })
    await store.close()
  })

  it('recovers from a corrupt checkpoint by re-reading, says so, and stores nothing twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-ff-'))
    const log = join(dir, 'kea-dhcp4.log')
    writeFileSync(log, readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    await runOnce(dir, store, [log], 206)
    writeFileSync(join(dir, 'state', 'file-k.json'), '{"torn": ')
    const { errors, pipeline } = await runOnce(dir, store, [log], 206)
    expect(errors.map((e) => e.code)).toContain('KEATRAIL_ERR_CHECKPOINT_CORRUPT')
    expect(pipeline.counters.duplicates).toBe(206)
    expect(await store.count()).toBe(206)
    await store.close()
  })

  it('cuts a line longer than the limit, marks it, and reads on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-ff-'))
    const log = join(dir, 'kea-dhcp4.log')
    const lines = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString().split('\n')
    lines.splice(5, 0, lines[5] + ' ' + 'x'.repeat(3 * 1024 * 1024))
    writeFileSync(log, lines.join('\n'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    await runOnce(dir, store, [log], 207, { maxLineBytes: 64 * 1024 })
    expect(await store.count()).toBe(207)
    const cut = (await store.search({ size: 1000 })).events.filter((e) => e.kea.parse.truncated === true)
    expect(cut).toHaveLength(1)
    expect(cut[0]!.event.original.length).toBeLessThanOrEqual(64 * 1024)
    await store.close()
  })
})

describe('file source and partial lines', () => {
  const LINE = '2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/1.2] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 40 seconds'

  it('waits for the newline of a line written in two parts, and emits a line without one after the idle time', async () => {
    const { appendFileSync } = await import('node:fs')
    const dir = mkdtempSync(join(tmpdir(), 'kt-partial-'))
    const log = join(dir, 'kea-dhcp4.log')
    writeFileSync(log, `${LINE}\n${LINE.slice(0, 70)}`)
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const source = new FileSource({ type: 'file', name: 'k', include: [log], timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 600 }, join(dir, 'state'), { info: () => {}, error: () => {} })
    const pipeline = new Pipeline(store, { log: { info: () => {}, error: () => {} } })
    const stop = new AbortController()
    const run = pipeline.run([source], stop.signal)
    await new Promise((resolve) => setTimeout(resolve, 250))
    appendFileSync(log, `${LINE.slice(70)}\n`) // the rest arrives before the idle time
    await new Promise((resolve) => setTimeout(resolve, 900))
    const events = (await store.search({ sort: 'asc' })).events
    expect(events.map((e) => e.event.original)).toEqual([LINE, LINE])
    appendFileSync(log, 'tail without newline') // never completed
    for (let i = 0; i < 100 && await store.count() < 3; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    stop.abort()
    await run
    const last = (await store.search({ size: 1 })).events[0]!
    expect(await store.count()).toBe(3)
    expect(last.event.original).toBe('tail without newline')
    expect(last.kea.parse.status).toBe('unmatched')
    await store.close()
  })
})
