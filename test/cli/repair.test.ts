import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import type { HolderAnswer } from '../../src/leases/types.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { runCli as run } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

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
