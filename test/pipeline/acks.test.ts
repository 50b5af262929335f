import { existsSync, mkdtempSync, readFileSync, writeFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { FileSource } from '../../src/sources/file/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { readFixture } from '../helpers/fixtures.js'

const quiet = { info: () => {}, error: () => {} }
const until = async (cond: () => boolean, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('checkpoints follow acknowledgements', () => {
  it('does not move a checkpoint while the store cannot write, and moves it once it can', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-acks-'))
    const log = join(dir, 'kea-dhcp4.log')
    writeFileSync(log, readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
    const dbPath = join(dir, 'keatrail.db')
    const store = new SqliteStore({ path: dbPath, busyTimeoutMs: 10 })
    const blocker = new Database(dbPath)
    blocker.prepare('BEGIN IMMEDIATE').run()

    const source = new FileSource({ type: 'file', name: 'k', include: [log], timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 50 }, join(dir, 'state'), quiet)
    const pipeline = new Pipeline(store, { log: quiet, queueBatches: 2 })
    const stop = new AbortController()
    const running = pipeline.run([source], stop.signal)
    const cp = join(dir, 'state', 'file-k.json')

    await until(() => pipeline.counters.storeErrors >= 2)
    source.checkpoint()
    expect(existsSync(cp) ? Object.values(JSON.parse(readFileSync(cp, 'utf8')) as Record<string, { offset: number }>)[0]?.offset ?? 0 : 0).toBe(0)

    blocker.prepare('ROLLBACK').run()
    blocker.close()
    await until(() => pipeline.counters.stored === 206)
    stop.abort()
    await running
    const offsets = Object.values(JSON.parse(readFileSync(cp, 'utf8')) as Record<string, { offset: number }>).map((c) => c.offset)
    expect(offsets).toEqual([statSync(log).size])
    expect(await store.count()).toBe(206)
    await store.close()
  })

  it('resumes from its checkpoint after a restart without storing anything twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-acks-'))
    const log = join(dir, 'kea-dhcp4.log')
    const text = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString()
    const lines = text.split('\n')
    writeFileSync(log, lines.slice(0, 100).join('\n') + '\n')
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const once = async (): Promise<Pipeline> => {
      const source = new FileSource({ type: 'file', name: 'k', include: [log], timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 50 }, join(dir, 'state'), quiet)
      const p = new Pipeline(store, { log: quiet })
      const stop = new AbortController()
      const run = p.run([source], stop.signal)
      await until(() => p.counters.stored + p.counters.duplicates >= 1)
      await new Promise((resolve) => setTimeout(resolve, 300))
      stop.abort()
      await run
      return p
    }
    expect((await once()).counters.stored).toBe(100)
    writeFileSync(log, text)
    const second = await once()
    expect(second.counters.stored).toBe(106)
    expect(second.counters.duplicates).toBe(0)
    expect(await store.count()).toBe(206)
    await store.close()
  })
})
