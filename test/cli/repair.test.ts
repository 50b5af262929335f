import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, inject, it, vi } from 'vitest'
import type { HolderAnswer } from '../../src/leases/types.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { runCli as run } from '../helpers/cli.js'
import { KEA_FIXTURES, parseBuffer, ROOT } from '../helpers/fixtures.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

// Issue 18: operator mistakes that must not silently corrupt lease answers, in every store.

// A real Kea 2.2 log (file output, UTC) and the memfile lease file Kea wrote beside it.
const LOG = join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-file.log')
const EVENTS = 254
// kea-dhcp4-INFO-leases.csv: `192.0.2.12,02:00:00:00:00:0e,…,20,1795543372,…,host-e,0`: valid
// 20 s, expiring 18:02:52Z, so held by 02:00:00:00:00:0e from 18:02:32Z.
const ADDRESS = '192.0.2.12'
const AT = '2026-11-24T18:02:40Z'
const HOLDER = '02:00:00:00:00:0e'

const esUrl = inject('esUrl')

interface Kind {
  name: string
  skip: boolean
  /** Store flags for one fresh store. */
  args: () => string[]
  /** Makes what the last command wrote visible to the next process's searches. */
  settle: (args: string[]) => Promise<void>
  /** Events stored, and how many of them did not parse. */
  count: (args: string[]) => Promise<{ all: number, unmatched: number }>
}

async function counted (store: Store): Promise<{ all: number, unmatched: number }> {
  try {
    return { all: await store.count(), unmatched: await store.count({ filters: { status: ['unmatched'] } }) }
  } finally {
    await store.close()
  }
}

const kinds: Kind[] = [
  {
    name: 'sqlite',
    skip: false,
    args: () => ['--data-dir', mkdtempSync(join(tmpdir(), 'kt-repair-'))],
    settle: async () => {},
    count: async (args) => await counted(new SqliteStore({ path: join(args[args.indexOf('--data-dir') + 1] as string, 'keatrail.db') }))
  },
  {
    name: 'elasticsearch',
    skip: esUrl === '',
    args: () => ['--store', 'elasticsearch', '--es-url', esUrl, '--es-namespace', `repair${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`, '--data-dir', mkdtempSync(join(tmpdir(), 'kt-repair-'))],
    settle: async (args) => {
      const es = new ElasticsearchStore({ url: esUrl, namespace: args[args.indexOf('--es-namespace') + 1] as string })
      try { await es.refresh() } finally { await es.close() }
    },
    count: async (args) => await counted(new ElasticsearchStore({ url: esUrl, namespace: args[args.indexOf('--es-namespace') + 1] as string }))
  }
]

async function leaseAt (store: string[], address: string, at: string, extra: string[] = []): Promise<HolderAnswer> {
  const r = await run(['lease', 'at', ...store, ...extra, '--json', address, at])
  expect(r.err).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.out) as HolderAnswer
}

describe.each(kinds)('a wrong pattern, then the right one ($name)', (kind) => {
  it.skipIf(kind.skip)('the re-import replaces what the wrong pattern stored, and lease at names the holder Kea\'s lease file names', async () => {
    const store = kind.args()
    const wrong = await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-b', '--pattern', 'kea-syslog', LOG])
    expect(wrong.code).toBe(1)
    expect(wrong.err).toContain(`parse: ${EVENTS} unmatched`)
    await kind.settle(store)
    // Nothing parsed: no lease history, and no coverage claimed for the time of the leases.
    const before = await leaseAt(store, ADDRESS, AT)
    expect(before.holders).toEqual([])
    expect(before.covered).toBe(false)
    expect(before.coverage).toBeUndefined()

    const right = await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-b', LOG])
    expect(right.code).toBe(0)
    expect(right.err).toContain(`0 new, 0 already stored, ${EVENTS} replaced`)
    await kind.settle(store)
    const after = await leaseAt(store, ADDRESS, AT)
    expect(after.covered).toBe(true)
    expect(after.holders.map((h) => h.hwaddr)).toEqual([HOLDER])
    expect(after.holders[0]?.scope).toBe('kea-b')
    // The events themselves are the parsed ones now, each stored once (in Elasticsearch the
    // unmatched copy was in another data stream, kea.other).
    expect(await kind.count(store)).toEqual({ all: EVENTS, unmatched: 0 })

    // A third import (a replay) replaces nothing.
    const again = await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-b', LOG])
    expect(again.err).toContain(`0 new, ${EVENTS} already stored, 0 dead-lettered`)
  })
})

describe('a backfill by import, then live collection by run, on the same server', () => {
  // 192.0.2.13 allocated (line 34, imported) and allocated again to the same client (line 46,
  // read by run): one interval of one server only if both stamp the same host.name.
  const lines = readFileSync(LOG, 'utf8').split('\n')
  const SPLIT = 40

  it('is one scope, and lease at --scope finds the holder across the boundary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-repair-'))
    const log = join(dir, 'kea-dhcp4.log')
    writeFileSync(log, lines.slice(0, SPLIT).join('\n') + '\n')
    const imported = await run(['import', '--data-dir', join(dir, 'data'), '--tz', 'UTC', log])
    expect(imported.code).toBe(0)
    // Kea writes on; keatrail run follows the same file (its lines already imported are replays).
    writeFileSync(log, lines.join('\n'))
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\nsources:\n  - type: file\n    name: k\n    include: ["${log}"]\n    timeZone: UTC\n    idleFlushMs: 100\napi:\n  enabled: false\n`)
    const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => { resolve(code) }))
    const count = (): number => {
      try {
        const db = new Database(join(dir, 'data', 'keatrail.db'), { readonly: true })
        try { return (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n } finally { db.close() }
      } catch { return 0 }
    }
    try {
      await vi.waitFor(() => { expect(count(), err).toBeGreaterThanOrEqual(EVENTS) }, { timeout: 20_000, interval: 50 })
    } finally {
      proc.kill('SIGTERM')
    }
    expect(await exit, err).toBe(0)
    // Event ids depend on the server's name too: under two names the backfill was stored twice.
    expect(count()).toBe(EVENTS)

    const store = ['--data-dir', join(dir, 'data')]
    const here = hostname()
    const s = new SqliteStore({ path: join(dir, 'data', 'keatrail.db') })
    try {
      expect(await s.leases.scopes()).toEqual([here])
    } finally {
      await s.close()
    }
    const a = await leaseAt(store, '192.0.2.13', '2026-11-24T18:02:33.000Z', ['--scope', here])
    expect(a.covered).toBe(true)
    expect(a.holders.map((h) => [h.scope, h.hwaddr, h.start])).toEqual([[here, '00:0c:01:02:03:04', '2026-11-24T18:02:32.732Z']])
    // The interval runs on past the boundary: the allocation read by run extended it.
    const later = await leaseAt(store, '192.0.2.13', '2026-11-24T18:02:53.000Z', ['--scope', here])
    expect(later.holders.map((h) => h.start)).toEqual(['2026-11-24T18:02:32.732Z'])
  }, 30_000)
})

describe('lease history stored without a server name (imported before import stamped one)', () => {
  it('is found by lease at --scope and lease history --scope, marked as such', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-repair-'))
    const s = new SqliteStore({ path: join(dir, 'keatrail.db') })
    try {
      const { events } = await parseBuffer(readFileSync(LOG))
      expect(events.every((e) => e.host === undefined)).toBe(true)
      await s.write(events)
    } finally {
      await s.close()
    }
    const store = ['--data-dir', dir]
    const a = await leaseAt(store, ADDRESS, AT, ['--scope', 'kea-b'])
    expect(a.covered).toBe(true)
    expect(a.holders.map((h) => [h.scope, h.hwaddr])).toEqual([['', HOLDER]])
    const text = await run(['lease', 'at', ...store, '--scope', 'kea-b', ADDRESS, AT])
    expect(text.out).toContain(`address ${ADDRESS} (server not recorded): MAC 02-00-00-00-00-0E`)
    const h = await run(['lease', 'history', ...store, '--scope', 'kea-b', '--json', '--address', ADDRESS])
    expect((JSON.parse(h.out) as { intervals: Array<{ scope: string }> }).intervals.map((i) => i.scope)).toEqual([''])
    // A named scope's own intervals are not mixed up with it: they keep their name.
    const named = new SqliteStore({ path: join(dir, 'keatrail.db') })
    try {
      const { events } = await parseBuffer(readFileSync(LOG), { host: 'kea-b', path: 'other/kea-dhcp4.log' })
      await named.write(events)
    } finally {
      await named.close()
    }
    const both = await leaseAt(store, ADDRESS, AT, ['--scope', 'kea-b'])
    expect(both.holders.map((x) => x.scope).sort()).toEqual(['', 'kea-b'])
  })
})

describe.each(kinds)('keatrail store delete ($name)', (kind) => {
  const OTHER = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')

  it.skipIf(kind.skip)('deletes one file\'s events (a dry run first); lease answers for its time say not covered', async () => {
    const store = kind.args()
    expect((await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-b', LOG, OTHER])).code).toBe(0)
    await kind.settle(store)
    expect((await leaseAt(store, ADDRESS, AT)).holders.map((h) => h.hwaddr)).toEqual([HOLDER])

    const dry = await run(['store', 'delete', ...store, '--file', LOG, '--host', 'kea-b'])
    expect(dry.code).toBe(0)
    expect(dry.out).toMatch(new RegExp(`^would delete ${EVENTS} events \\(source [0-9a-f]{20}; host kea-b\\); run again with --yes to delete them\\n$`))
    expect((await kind.count(store)).all).toBe(EVENTS + 206)

    const r = await run(['store', 'delete', ...store, '--file', LOG, '--host', 'kea-b', '--yes'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(new RegExp(`^deleted ${EVENTS} events \\(source [0-9a-f]{20}; host kea-b\\); lease history re-derived for [1-9]\\d* addresses and prefixes\\n` +
      '  kea-b: lease coverage now 2026-11-24T09:16:10.304Z … 2026-11-24T09:17:18.266Z\\n$'))
    await kind.settle(store)
    expect(await kind.count(store)).toEqual({ all: 206, unmatched: 0 })
    const a = await leaseAt(store, ADDRESS, AT)
    expect(a.holders).toEqual([])
    expect(a.covered).toBe(false)
    // What is left of its history comes from the other file (09:16–09:17) alone.
    const left = JSON.parse((await run(['lease', 'history', ...store, '--json', '--address', ADDRESS])).out) as { intervals: Array<{ start: string }> }
    expect(left.intervals.length).toBeGreaterThan(0)
    expect(left.intervals.filter((i) => i.start >= '2026-11-24T18')).toEqual([])
  })

  it.skipIf(kind.skip)('deletes one time range\'s events of one server; the hole left is a gap, not "nobody held it"', async () => {
    const store = kind.args()
    expect((await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-b', LOG])).code).toBe(0)
    expect((await run(['import', ...store, '--tz', 'UTC', '--host', 'kea-c', LOG])).code).toBe(0)
    await kind.settle(store)
    const r = await run(['store', 'delete', ...store, '--from', '2026-11-24T18:02:30Z', '--to', '2026-11-24T18:02:50Z', '--host', 'kea-b', '--yes'])
    expect(r.err).toBe('')
    expect(r.out).toMatch(/^deleted \d+ events \(host kea-b; 2026-11-24T18:02:30\.000Z ≤ time < 2026-11-24T18:02:50\.000Z\)/)
    expect(r.out).toContain('  kea-b: lease coverage now 2026-11-24T18:02:23.835Z … 2026-11-24T18:03:05.757Z\n')
    expect(r.out).toMatch(/ {2}kea-b: no events left from 2026-11-24T18:02:30\.\d{3}Z to 2026-11-24T18:02:4\d\.\d{3}Z: recorded as a gap/)
    await kind.settle(store)
    const b = await leaseAt(store, ADDRESS, AT, ['--scope', 'kea-b'])
    expect(b.holders).toEqual([])
    expect(b.covered).toBe(false)
    // The other server's events of that time stay, and so does its answer.
    const c = await leaseAt(store, ADDRESS, AT, ['--scope', 'kea-c'])
    expect(c.holders.map((h) => [h.scope, h.hwaddr])).toEqual([['kea-c', HOLDER]])
    expect(c.covered).toBe(true)
  })
})

describe('keatrail store delete beside keatrail run', () => {
  it('refuses while the data directory is locked, in one coded line, and deletes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-repair-'))
    expect((await run(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-b', LOG])).code).toBe(0)
    // The lock `keatrail run` holds: this (live) process's pid.
    writeFileSync(join(dir, 'keatrail.lock'), `${process.pid}\n`)
    const r = await run(['store', 'delete', '--data-dir', dir, '--file', LOG, '--host', 'kea-b', '--yes'])
    expect(r.code).not.toBe(0)
    expect(r.err).toMatch(/^keatrail: KEATRAIL_ERR_DATADIR_LOCKED: [^\n]+\n$/)
    expect(r.out).toBe('')
    const s = new SqliteStore({ path: join(dir, 'keatrail.db') })
    try { expect(await s.count()).toBe(EVENTS) } finally { await s.close() }
  })

  it('says which events to delete when given none', async () => {
    const r = await run(['store', 'delete', '--data-dir', mkdtempSync(join(tmpdir(), 'kt-repair-')), '--yes'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^keatrail: KEATRAIL_ERR_USAGE: say which events[^\n]+\n$/)
  })
})
