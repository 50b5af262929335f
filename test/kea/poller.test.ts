import { createServer, type Server } from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { KeaPoller, keaConfigSchema } from '../../src/kea/poller.js'
import { MAX_ERROR_TEXT } from '../../src/kea/snapshot.js'
import type { Log } from '../../src/pipeline/types.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// The poller against a Control Agent that answers wrongly or hostilely (a real Kea is in
// test/kea/kea-real.test.ts): lease paging that does not advance, answers that cannot be made
// into a snapshot, error texts of megabytes.

type Answer = Record<string, unknown>
type Handler = (command: string, args: Record<string, unknown> | undefined) => Answer | string | undefined

/** What a healthy kea-dhcp4 behind the Control Agent answers. */
const healthy: Handler = (command) => {
  switch (command) {
    case 'status-get': return { result: 0, arguments: { pid: 42, uptime: 10, reload: 10 } }
    case 'version-get': return { result: 0, text: '2.6.1' }
    case 'config-get': return { result: 0, arguments: { Dhcp4: { subnet4: [{ id: 1, subnet: '10.0.0.0/8' }] } } }
    case 'statistic-get-all': return { result: 0, arguments: { 'subnet[1].total-addresses': [[100, '2026-01-01 00:00:00.000000']] } }
    case 'stat-lease4-get': return { result: 2, text: '\'stat-lease4-get\' command not supported.' }
    default: return undefined
  }
}

let server: Server
let url = ''
let handler: Handler = healthy
const requests: Array<{ command: string, args?: Record<string, unknown> }> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      const cmd = JSON.parse(body) as { command: string, arguments?: Record<string, unknown> }
      requests.push({ command: cmd.command, ...(cmd.arguments === undefined ? {} : { args: cmd.arguments }) })
      const a = handler(cmd.command, cmd.arguments) ?? healthy(cmd.command, cmd.arguments) ?? { result: 2, text: 'not supported' }
      res.end(typeof a === 'string' ? a : JSON.stringify([a]))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

let store: SqliteStore
const logged: Array<{ code?: string, msg: string, fields?: Record<string, unknown> }> = []
const log: Log = {
  info: (msg, fields) => { logged.push({ msg, ...(fields === undefined ? {} : { fields }) }) },
  error: (code, msg, fields) => { logged.push({ code, msg, ...(fields === undefined ? {} : { fields }) }) }
}
const poller = (): KeaPoller => new KeaPoller(keaConfigSchema.parse({ servers: [{ name: 'kea-a', url, timeoutMs: 5000 }] }), store, log)

beforeEach(() => {
  handler = healthy
  requests.length = 0
  logged.length = 0
  store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-poller-')), 'keatrail.db') })
})
afterEach(async () => {
  vi.restoreAllMocks()
  await store.close()
})

/** The i-th of Kea's leases, in address order (10.0.0.0, 10.0.0.1, …). */
const lease = (i: number): Answer => ({
  'ip-address': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'hw-address': `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  'valid-lft': 3600, cltt: 1_780_000_000, 'subnet-id': 1, state: 0
})
const page = (first: number, count: number): Answer => ({ result: 0, text: `${count} IPv4 lease(s) found.`, arguments: { leases: Array.from({ length: count }, (_, j) => lease(first + j)), count } })

describe('lease seeding', () => {
  it('hands Kea\'s leases to the store page by page, never all of them at once', async () => {
    // 3,500 leases: three full pages of 1,000 and one of 500; Kea pages from the last address.
    handler = (command, args) => {
      if (command !== 'lease4-get-page') return undefined
      const from = args?.from === 'start' ? 0 : Number(String(args?.from).split('.').reduce((n, o) => n * 256 + Number(o), 0) - 10 * 2 ** 24) + 1
      return from >= 3500 ? { result: 3, text: '0 IPv4 lease(s) found.', arguments: { leases: [], count: 0 } } : page(from, Math.min(1000, 3500 - from))
    }
    const writes = vi.spyOn(store.leases, 'writeKeaState')
    const p = poller()
    expect(await p.seedLeases(p.clients[0]!)).toBe(3500)
    expect(requests.filter((r) => r.command === 'lease4-get-page').map((r) => r.args?.from)).toEqual(['start', '10.0.3.231', '10.0.7.207', '10.0.11.183'])
    expect(Math.max(...writes.mock.calls.map(([intervals]) => intervals.length))).toBeLessThanOrEqual(1000)
    expect(writes.mock.calls.reduce((n, [intervals]) => n + intervals.length, 0)).toBe(3500)
    expect(p.counters.leaseSeedsIncomplete).toBe(0)
    expect(logged.filter((l) => l.code !== undefined)).toEqual([])
  })

  it('a Control Agent whose paging cursor does not advance: stops, logs and counts the seed as incomplete', async () => {
    // Answers full pages A, B, A, B … whatever "from" says; after 6 of them, "no more".
    let served = 0
    handler = (command) => {
      if (command !== 'lease4-get-page') return undefined
      return served++ >= 6 ? { result: 3, text: '0 IPv4 lease(s) found.' } : page(served % 2 === 1 ? 0 : 1000, 1000)
    }
    const p = poller()
    const created = await p.seedLeases(p.clients[0]!)
    // Page A, page B (advanced), page A again (behind the cursor): stop.
    expect(requests.filter((r) => r.command === 'lease4-get-page')).toHaveLength(3)
    expect(created).toBe(2000)
    expect(p.counters.leaseSeedsIncomplete).toBe(1)
    const line = logged.find((l) => l.code === 'KEATRAIL_ERR_KEA_LEASE_SEED_INCOMPLETE')
    expect(line?.msg).toMatch(/did not advance/)
    expect(line?.fields).toMatchObject({ server: 'kea-a', service: 'dhcp4', pages: 3 })
  })

  it('a lease_cmds error text of megabytes is cut in the log line', async () => {
    handler = (command) => command === 'lease4-get-page' ? { result: 1, text: 'E'.repeat(2_000_000) } : undefined
    const p = poller()
    await p.seedLeases(p.clients[0]!)
    const error = logged.find((l) => l.code === 'KEATRAIL_ERR_KEA_UNREACHABLE')?.fields?.error
    expect(typeof error).toBe('string')
    expect((error as string).length).toBeLessThan(MAX_ERROR_TEXT + 100)
    expect(error).toMatch(/cut: 1998976 more characters/)
  })
})

describe('snapshots that cannot be built or stored are recorded as failed', () => {
  it('a config-get nested 200,000 levels deep: a protocol-error snapshot, on this poll and the next', async () => {
    handler = (command) => command === 'config-get' ? `[{"result":0,"arguments":{"Dhcp4":{"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}}}]` : undefined
    const p = poller()
    for (let i = 0; i < 2; i++) {
      const r = await p.pollOnce(p.clients[0]!)
      expect(r.snapshots).toHaveLength(1)
      expect(r.snapshots[0]).toMatchObject({ server: 'kea-a', state: 'unreachable', error: { kind: 'protocol', message: expect.stringContaining('nested deeper than') } })
    }
    const stored = await store.snapshots.latest('kea-a')
    expect(stored.map((s) => [s.state, s.error?.kind])).toEqual([['unreachable', 'protocol']])
  })

  it('a result-set that is not a table (stat_cmds): still a snapshot, not a crash of the poll', async () => {
    handler = (command) => command === 'stat-lease4-get' ? { result: 0, arguments: { 'result-set': { columns: 'subnet-id', rows: [null, 7] } } } : undefined
    const p = poller()
    const r = await p.pollOnce(p.clients[0]!)
    expect(r.snapshots[0]).toMatchObject({ state: 'up', subnets: [{ id: 1, subnet: '10.0.0.0/8', total: 100 }] })
  })

  it('a store that refuses the snapshot: an error snapshot saying so is stored in its place', async () => {
    const write = store.snapshots.write.bind(store.snapshots)
    vi.spyOn(store.snapshots, 'write').mockImplementation(async (snaps) => {
      if (snaps.some((s) => s.state === 'up')) throw new Error('document rejected: too many fields')
      await write(snaps)
    })
    const p = poller()
    const r = await p.pollOnce(p.clients[0]!)
    expect(r.snapshots[0]).toMatchObject({ state: 'error', error: { kind: 'internal', message: expect.stringContaining('too many fields') } })
    expect((await store.snapshots.latest('kea-a')).map((s) => [s.state, s.error?.kind])).toEqual([['error', 'internal']])
    expect(logged.find((l) => l.code === 'KEATRAIL_ERR_KEA_SNAPSHOT')?.fields).toMatchObject({ server: 'kea-a' })
  })

  it('a status-get error text of megabytes is cut in the snapshot and the log', async () => {
    handler = (command) => command === 'status-get' ? { result: 1, text: `bad: ${'E'.repeat(3_000_000)}` } : undefined
    const p = poller()
    const s = (await p.pollOnce(p.clients[0]!)).snapshots[0]
    expect(s?.state).toBe('error')
    expect(s?.error?.message.length).toBeLessThan(MAX_ERROR_TEXT + 100)
    expect(s?.error?.message).toMatch(/^bad: E+… \[cut: \d+ more characters\]$/)
    const line = logged.find((l) => l.code === 'KEATRAIL_ERR_KEA_UNREACHABLE')
    expect(String(line?.fields?.error).length).toBeLessThan(MAX_ERROR_TEXT + 100)
    expect((await store.snapshots.latest('kea-a'))[0]?.error?.message).toBe(s?.error?.message)
  })
})

describe('lease seeding in a backend\'s own order', () => {
  it('pages that end at addresses out of numeric order (an SQL backend paging by text) are all read', async () => {
    // Text order: '10.0.0.200' < '10.0.0.50'. Three full pages, then none.
    const ends = ['10.0.0.200', '10.0.0.50', '10.0.0.7']
    let served = 0
    handler = (command) => {
      if (command !== 'lease4-get-page') return undefined
      if (served >= ends.length) return { result: 3, text: '0 IPv4 lease(s) found.' }
      const first = served * 1000
      const leases = Array.from({ length: 1000 }, (_, j) => j === 999 ? { ...lease(first + j), 'ip-address': ends[served] } : lease(first + j))
      served++
      return { result: 0, text: '1000 IPv4 lease(s) found.', arguments: { leases, count: 1000 } }
    }
    const p = poller()
    await p.seedLeases(p.clients[0]!)
    expect(requests.filter((r) => r.command === 'lease4-get-page').map((r) => r.args?.from)).toEqual(['start', ...ends])
    expect(p.counters.leaseSeedsIncomplete).toBe(0)
  })
})

describe('stopping', () => {
  it('ends a poll whose alert write is still waiting for the store (a cluster down at shutdown)', async () => {
    // A pool 99 % used: the poll raises an alert and writes it as an event.
    handler = (command) => command === 'statistic-get-all'
      ? { result: 0, arguments: { 'subnet[1].total-addresses': [[100, '2026-01-01 00:00:00.000000']], 'subnet[1].assigned-addresses': [[99, '2026-01-01 00:00:00.000000']] } }
      : undefined
    // The write waits as the Elasticsearch store's does while its cluster does not answer: until
    // its signal aborts. Before, the poller gave it none, and the service (which closes the store
    // only after polling has stopped) never stopped.
    let waiting = 0
    vi.spyOn(store, 'write').mockImplementation(async (_events, opts) => {
      waiting++
      return await new Promise((_resolve, reject) => {
        opts?.signal?.addEventListener('abort', () => { reject(new Error('write abandoned')) }, { once: true })
      })
    })
    const stop = new AbortController()
    const running = poller().run(stop.signal)
    await vi.waitFor(() => expect(waiting).toBe(1), { timeout: 10_000 })
    stop.abort()
    const ended = await Promise.race([running.then(() => true), new Promise((resolve) => setTimeout(resolve, 5000, false))])
    expect(ended).toBe(true)
  })
})
