import { createHash } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { apiKeyHash, buildApp, type AuditEntry, type AuditRecord, type AuditRow } from '../../src/api/app.js'
import { checkExposure, serveApi } from '../../src/api/serve.js'
import { apiConfigSchema } from '../../src/api/config.js'
import type { KeaSnapshot } from '../../src/kea/snapshot.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { QueryBusyError, QueryTimeoutError, StoreReadError, withCause } from '../../src/errors.js'
import { engineStore, enginesUp } from '../helpers/engines.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import type { Store } from '../../src/store/types.js'
import { parseBuffer, readFixture, ROOT } from '../helpers/fixtures.js'
import { rawRequest, UNAUTHENTICATED_VARIANTS } from '../helpers/raw-http.js'

// One API suite, both stores: the same requests give the same responses.

// Response bodies are checked field by field below; a schema type here would only repeat them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any

const { up: engines, skip: esSkip } = enginesUp()
const kinds = ['sqlite', ...engines.map((e) => e.name)]
const KEY = 'kt_test-reader-key-0123456789'
/** What a response must never carry: the store's own messages (SQLite, FTS5), SQL, stack frames. */
const LEAK = /SQLITE|sqlite_|syntax error near|fts5|no such (column|table|function)|Recursion|Expression tree|unterminated|\bat \S+ \(|\bat (\/|file:|node:)|"stack"|SELECT |events_fts|node_modules/i
const ADMIN = 'kt_test-admin-key-0123456789'

describe(`REST API on ${kinds.join(' and ')}${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const apps: Record<string, FastifyInstance> = {}
  const stores: Record<string, Store> = {}
  const audits: AuditEntry[] = []
  beforeAll(async () => {
    if (process.env.CI === 'true' && esSkip !== '') throw new Error(`CI needs Elasticsearch and OpenSearch: ${esSkip}`)
    const events: KeaEvent[] = []
    for (const f of ['captured/kea-dhcp4-INFO-file.log', 'captured/kea-dhcp6-INFO-file.log']) events.push(...(await parseBuffer(readFixture(f), { host: 'kea-a', path: f })).events)
    const snap: KeaSnapshot = {
      '@timestamp': '2026-11-24T18:05:00.000Z', id: 'kea-a|dhcp4|1', server: 'kea-a', service: 'dhcp4', state: 'up', version: '2.2.0',
      subnets: [{ id: 1, subnet: '192.0.2.0/24', total: 61, assigned: 50, declined: 0, free: 11, utilization: 81.97 }], shared_networks: [],
      totals: { total: 61, assigned: 50, declined: 0, free: 11, utilization: 81.97 }, packets: {}
    }
    stores.sqlite = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-api-')), 'k.db') })
    for (const engine of engines) {
      const es = engineStore(engine, { namespace: `api${Date.now().toString(36)}`, refresh: true })
      await es.ensureTemplates()
      stores[engine.name] = es
    }
    for (const [k, s] of Object.entries(stores)) {
      await s.write(events)
      await s.snapshots.write([snap])
      apps[k] = await buildApp({
        store: s,
        api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }], rateLimit: { max: 100_000, windowMs: 60_000 } },
        audit: (e) => audits.push(e as AuditEntry)
      })
    }
  }, 120_000)
  afterAll(async () => {
    for (const a of Object.values(apps)) await a.close()
    for (const s of Object.values(stores)) await s.close()
  })

  const auth = { authorization: `Bearer ${KEY}` }
  async function both (url: string, headers: Record<string, string> = auth): Promise<Array<{ status: number, body: Json }>> {
    return await Promise.all(kinds.map(async (k) => {
      const r = await (apps[k] as FastifyInstance).inject({ url, headers })
      return { status: r.statusCode, body: r.headers['content-type']?.toString().includes('json') === true ? r.json() : r.body }
    }))
  }
  /** The same answer from every store, apart from store-specific metadata (the cursor's content). */
  async function same (url: string): Promise<Json> {
    const answers = await both(url)
    const comparable = (a: { status: number, body: Json }): unknown => {
      if (typeof a.body !== 'object' || a.body === null || !('cursor' in a.body)) return a
      const { cursor, ...rest } = a.body as { cursor?: string }
      return { ...a, body: { ...rest, hasCursor: cursor !== undefined } }
    }
    for (const a of answers.slice(1)) expect(comparable(a), url).toEqual(comparable(answers[0] as { status: number, body: Json }))
    return answers[0]
  }

  it('GET /api/v1/events: the query language, time range, newest first, pagination with an opaque cursor', async () => {
    const first = await same('/api/v1/events?q=action:allocate%20AND%20ip:192.0.2.0/26&size=7&from=2026-11-24T00:00:00Z')
    expect(first.status).toBe(200)
    expect(first.body.events).toHaveLength(7)
    const times = first.body.events.map((e: KeaEvent) => e['@timestamp'])
    expect(times).toEqual([...times].sort().reverse())
    let cursor = first.body.cursor as string
    const firsts = await Promise.all(kinds.map(async (k) => (await (apps[k] as FastifyInstance).inject({ url: '/api/v1/events?q=action:allocate%20AND%20ip:192.0.2.0/26&size=7&from=2026-11-24T00:00:00Z', headers: auth })).json()))
    let cursors: Array<string | undefined> = firsts.map((p) => p.cursor)
    const seen = new Set(first.body.events.map((e: KeaEvent) => e.event.id))
    for (let i = 0; i < 100 && cursor !== undefined; i++) {
      expect(cursors.every((c) => c !== undefined)).toBe(true)
      // Cursors are per store: walk each store's pages, compare the pages.
      const pages = await Promise.all(kinds.map(async (k, i) => (await (apps[k] as FastifyInstance).inject({ url: `/api/v1/events?q=action:allocate%20AND%20ip:192.0.2.0/26&size=7&from=2026-11-24T00:00:00Z&cursor=${cursors[i] as string}`, headers: auth })).json()))
      for (const p of pages.slice(1)) expect(p.events).toEqual(pages[0].events)
      for (const e of pages[0].events) { expect(seen.has(e.event.id)).toBe(false); seen.add(e.event.id) }
      cursors = pages.map((p) => p.cursor)
      cursor = pages[0].cursor
    }
    expect(seen.size).toBe(first.body.total.value)
  })

  it('GET /api/v1/events/{id}: one event with its raw line; 404 for an unknown id', async () => {
    const page = await same('/api/v1/events?q=code:DHCP4_RELEASE&size=1')
    const id = page.body.events[0].event.id
    const one = await same(`/api/v1/events/${id}`)
    expect(one.body.event.original).toMatch(/DHCP4_RELEASE/)
    const missing = await same('/api/v1/events/nope')
    expect(missing).toMatchObject({ status: 404, body: { code: 'KEATRAIL_ERR_NOT_FOUND' } })
  })

  it('GET /api/v1/leases/at and /leases/history: holders with evidence lines, and every lookup audited', async () => {
    audits.length = 0
    const at = await same('/api/v1/leases/at?address=192.0.2.10&time=2026-11-24T19:02:30%2B01:00')
    expect(at.body.holders[0]).toMatchObject({ lease: '192.0.2.10', mac: '02-00-00-00-00-0A', certainty: expect.any(String) })
    expect(at.body.holders[0].evidence_lines[0].line).toMatch(/DHCP4_LEASE_ALLOC .* 192\.0\.2\.10 /)
    const hist = await same('/api/v1/leases/history?duid=00-03-00-01-02-00-00-00-06-0A')
    expect(hist.body.intervals.some((i: { prefix?: string }) => i.prefix !== undefined)).toBe(true)
    await vi.waitFor(() => { expect(audits.map((a) => [a.key, a.route, a.status])).toEqual(kinds.flatMap(() => [['reader', '/api/v1/leases/at', 200]]).concat(kinds.flatMap(() => [['reader', '/api/v1/leases/history', 200]]))) })
  })

  it('GET /api/v1/leases/report: the evidence report as JSON, or as an HTML attachment under its own CSP; a bad address or zone is a 400', async () => {
    for (const k of kinds) {
      const app = apps[k] as FastifyInstance
      const j = await app.inject({ url: '/api/v1/leases/report?address=192.0.2.10&time=2026-11-24%2019:02:30&tz=Europe/Berlin&format=json', headers: auth })
      expect(j.statusCode, j.body).toBe(200)
      const rep = j.json()
      const at = (await app.inject({ url: '/api/v1/leases/at?address=192.0.2.10&time=2026-11-24T18:02:30Z', headers: auth })).json()
      expect(rep.question).toEqual({ address: '192.0.2.10', time: '2026-11-24 19:02:30', instant: '2026-11-24T18:02:30.000Z' })
      expect([rep.answer.status, rep.time_zone]).toEqual(['held', 'Europe/Berlin'])
      const holder = rep.timeline.find((iv: Json) => iv.role === 'holder')
      expect([holder.mac, holder.start, holder.evidence]).toEqual([at.holders[0].mac, at.holders[0].start, at.holders[0].evidence])
      // The lines the API shows as evidence, verbatim, in the report.
      const lines = rep.evidence.filter((e: Json) => rep.timeline[e.interval].role === 'holder').map((e: Json) => e.raw)
      expect(lines).toEqual(at.holders[0].evidence_lines.map((l: Json) => l.line))
      // Every store keeps a chain: the report names its head and each line's link.
      expect(rep.chain.link).toMatch(/^[0-9a-f]{64}$/)
      expect(rep.evidence.every((e: Json) => /^[0-9a-f]{64}$/.test(e.chain?.link ?? ''))).toBe(true)

      const h = await app.inject({ url: '/api/v1/leases/report?address=192.0.2.10&time=2026-11-24T18:02:30Z', headers: auth })
      expect(h.statusCode).toBe(200)
      expect(h.headers['content-type']).toBe('text/html; charset=utf-8')
      expect(h.headers['content-disposition']).toBe('attachment; filename="keatrail-report-192.0.2.10-20261124T180230000Z.html"')
      expect(h.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+';/)
      expect(h.body).toMatch(/^<!doctype html>/)
      expect(h.body).toContain('<h1>Who held 192.0.2.10 at 2026-11-24 18:02:30.000 UTC?</h1>')

      const bad = await app.inject({ url: '/api/v1/leases/report?address=192.0.2.300&time=2026-11-24T18:02:30Z', headers: auth })
      // As /leases/at answers the same mistake.
      const badAt = await app.inject({ url: '/api/v1/leases/at?address=192.0.2.300&time=2026-11-24T18:02:30Z', headers: auth })
      expect([bad.statusCode, bad.json().code]).toEqual([400, badAt.json().code])
      const badTime = await app.inject({ url: '/api/v1/leases/report?address=192.0.2.10&time=yesterday', headers: auth })
      expect([badTime.statusCode, badTime.json().code]).toEqual([400, 'KEATRAIL_ERR_BAD_REQUEST'])
      expect(bad.body).not.toMatch(LEAK)
      expect((await app.inject({ url: '/api/v1/leases/report?address=192.0.2.10&time=2026-11-24T18:02:30Z&tz=Mars/Olympus', headers: auth })).statusCode).toBe(400)
      expect((await app.inject({ url: '/api/v1/leases/report?address=192.0.2.10&time=2026-11-24T18:02:30Z' })).statusCode).toBe(401)
      const about = (await app.inject({ url: '/api/v1/about', headers: auth })).json()
      expect(about).toEqual({ version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version, time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone, chain: true })
    }
  })

  it('POST /api/v1/leases/attribute: one NDJSON line per row, in order, as /leases/at answers; one audit entry per row; bounded', async () => {
    audits.length = 0
    const rows = [
      { address: '192.0.2.10', time: '2026-11-24T19:02:30+01:00', ticket: 'A-1', status: 'open' },
      { address: '192.0.2.10', time: '2020-01-01T00:00:00Z', ticket: 'A-2' },
      { address: 'not-an-ip', time: '2026-11-24T18:02:30Z', ticket: 'A-3' },
      { address: '192.0.2.10', time: '2026-11-24 19:02:30', ticket: 'A-4' }
    ]
    for (const k of kinds) {
      const app = apps[k] as FastifyInstance
      const r = await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows, tz: 'Europe/Berlin' } })
      expect(r.statusCode, r.body).toBe(200)
      expect(r.headers['content-type']).toMatch(/^application\/x-ndjson/)
      const lines = r.body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>)
      expect(lines.map((l) => [l.ticket, l.status])).toEqual([['A-1', 'held'], ['A-2', 'not-covered'], ['A-3', 'bad-input'], ['A-4', 'held']])
      // The report's own `status` field is kept beside the answer's.
      expect(lines[0]?.status_input).toBe('open')
      const at = (await app.inject({ url: '/api/v1/leases/at?address=192.0.2.10&time=2026-11-24T19:02:30%2B01:00', headers: auth })).json()
      expect(lines[0]).toMatchObject({ address: '192.0.2.10', mac: at.holders[0].mac, start: at.holders[0].start, evidence: at.holders[0].evidence.join(' ') })
      expect(lines[3]?.evidence).toBe(lines[0]?.evidence)
    }
    await vi.waitFor(() => {
      // One entry per batch (who, from where), then one line per row of its batch id.
      const all = audits as AuditRecord[]
      const batches = all.filter((a): a is AuditEntry => 'route' in a && a.route === '/api/v1/leases/attribute' && a.batch !== undefined)
      const mine = all.filter((a): a is AuditRow => 'row' in a)
      expect(batches.map((b) => [b.key, b.query.rows, b.status])).toEqual(kinds.map(() => ['reader', rows.length, 200]))
      expect(mine).toHaveLength(rows.length * kinds.length)
      expect(mine.slice(0, 4).map((a) => [a.batch, a.row, a.address, a.answer])).toEqual([[batches[0]?.batch, 1, '192.0.2.10', 'held'], [batches[0]?.batch, 2, '192.0.2.10', 'not-covered'], [batches[0]?.batch, 3, 'not-an-ip', 'bad-input'], [batches[0]?.batch, 4, '192.0.2.10', 'held']])
    })
    const app = apps.sqlite as FastifyInstance
    const tooMany = await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows: Array.from({ length: 100_001 }, () => ({ address: '192.0.2.10', time: '2026-11-24T18:02:30Z' })) } })
    expect(tooMany.statusCode).toBe(400)
    const badTz = await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows, tz: 'Mars/Olympus' } })
    expect([badTz.statusCode, badTz.json().message]).toEqual([400, 'tz: "Mars/Olympus" is not an IANA time zone (such as UTC or Europe/Berlin)'])
    expect((await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', payload: { rows } })).statusCode).toBe(401)
    // One batch at a time: a second, sent while the first streams, is refused (503) and may retry.
    const big = Array.from({ length: 20_000 }, (_, i) => ({ address: `192.0.2.${1 + (i % 200)}`, time: '2026-11-24T18:02:30Z' }))
    const [first, second] = await Promise.all([
      app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows: big } }),
      new Promise((resolve) => setTimeout(resolve, 200)).then(async () => await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows } }))
    ])
    expect(first.statusCode).toBe(200)
    expect(first.body.trim().split('\n')).toHaveLength(20_000)
    expect([second.statusCode, second.json().code]).toEqual([503, 'KEATRAIL_ERR_QUERY_BUSY'])

    // A client that goes away mid-stream ends its batch: the next one is answered, not refused.
    const served = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }], rateLimit: { max: 100_000, windowMs: 60_000 } } })
    const url = await served.listen({ port: 0, host: '127.0.0.1' })
    try {
      const gone = new AbortController()
      const res = await fetch(`${url}/api/v1/leases/attribute`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ rows: big }), signal: gone.signal })
      const reader = res.body?.getReader()
      await reader?.read()
      gone.abort()
      await vi.waitFor(async () => {
        const next = await served.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows } })
        expect(next.statusCode).toBe(200)
      }, { timeout: 30_000, interval: 200 })
    } finally {
      // The aborted response's socket lingers (undici's side) until a timeout: not waited for.
      served.server.closeAllConnections()
      await served.close()
    }

    // Past the body bound (32 MiB), over a real socket: 413 before anything is parsed, though
    // every row would pass the schema (100,000 rows of a 256- and a 40-character field).
    const huge = JSON.stringify({ rows: Array.from({ length: 100_000 }, () => ({ address: '192.0.2.10', time: '2026-11-24T18:02:30Z', pad: 'p'.repeat(256), note: 'n'.repeat(40) })) })
    expect(Buffer.byteLength(huge)).toBeGreaterThan(32 * 1024 * 1024)
    const bounded = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }], rateLimit: { max: 100_000, windowMs: 60_000 } } })
    const bUrl = await bounded.listen({ port: 0, host: '127.0.0.1' })
    try {
      const tooBig = await fetch(`${bUrl}/api/v1/leases/attribute`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: huge })
      expect(tooBig.status).toBe(413)
    } finally {
      bounded.server.closeAllConnections()
      await bounded.close()
    }

    // A client that stops reading and never closes: cut off after api.attributeStallMs.
    const stalled = await buildApp({ store: stores.sqlite as Store, api: { attributeStallMs: 500, keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }], rateLimit: { max: 100_000, windowMs: 60_000 } } })
    /** Sends a 50,000-row batch over a socket of its own, and stops reading after its first bytes. */
    const stallBatch = async (app: FastifyInstance): Promise<Socket> => {
      const at = await app.listen({ port: 0, host: '127.0.0.1' })
      const sock = connect(Number(new URL(at).port), '127.0.0.1')
      const body = JSON.stringify({ rows: Array.from({ length: 50_000 }, (_, i) => ({ address: `192.0.2.${1 + (i % 200)}`, time: '2026-11-24T18:02:30Z', pad: 'x'.repeat(200) })) })
      await new Promise<void>((resolve) => sock.once('connect', resolve))
      sock.write(`POST /api/v1/leases/attribute HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      await new Promise<void>((resolve) => sock.once('data', () => { resolve() }))
      sock.pause()
      return sock
    }
    const sock = await stallBatch(stalled)
    try {
      await vi.waitFor(async () => {
        const next = await stalled.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: auth, payload: { rows } })
        expect(next.statusCode).toBe(200)
      }, { timeout: 30_000, interval: 200 })
    } finally {
      sock.destroy()
      stalled.server.closeAllConnections()
      await stalled.close()
    }

    // Shutting down while a batch streams to a client that stopped reading: the batch is cut off
    // at once, not after attributeStallMs (60 s by default), and close() returns.
    const closing = await buildApp({ store: stores.sqlite as Store, api: { shutdownGraceMs: 120_000, keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }] } })
    const paused = await stallBatch(closing)
    try {
      const outcome = await Promise.race([
        closing.close().then(() => 'closed'),
        new Promise((resolve) => setTimeout(() => { resolve('still open after 20 s') }, 20_000).unref())
      ])
      expect(outcome).toBe('closed')
    } finally {
      paused.destroy()
      closing.server.closeAllConnections()
    }
  }, 120_000)

  it('every authenticated read is audited once, with key, address, route, parameters and status; public, refused and metrics requests are not', async () => {
    const log: AuditEntry[] = []
    const app = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }] }, audit: (e) => log.push(e as AuditEntry) })
    const id = (await app.inject({ url: '/api/v1/events?q=code:DHCP4_RELEASE&size=1', headers: auth })).json().events[0].event.id as string
    const reads = [
      `/api/v1/events/${id}`, '/api/v1/stats/top?field=mac&q=ip:192.0.2.10', '/api/v1/stats/histogram?interval=1h&to=2026-11-25T00:00:00Z',
      '/api/v1/alerts', '/api/v1/snapshots', '/api/v1/snapshots/latest', '/api/v1/deadletter', '/api/v1/events?q=mac:zz-bad'
    ]
    for (const url of reads) await app.inject({ url, headers: auth })
    await app.inject({ method: 'POST', url: '/api/v1/deadletter/retry', headers: { authorization: `Bearer ${ADMIN}` } })
    for (const url of ['/healthz', '/', '/docs/json', '/metrics', '/api/v1/whoami']) await app.inject({ url, headers: auth })
    await app.inject({ url: '/api/v1/events?q=ip:192.0.2.10' })
    // The retry changes state: recorded before it acts (status 0) and once answered.
    await vi.waitFor(() => { expect(log).toHaveLength(reads.length + 3) })
    await app.close()
    expect(log[0]).toMatchObject({ key: 'reader', ip: '127.0.0.1', method: 'GET', route: '/api/v1/events', query: { q: 'code:DHCP4_RELEASE', size: 1 }, status: 200, time: expect.stringMatching(/^\d{4}-/) })
    expect(log[1]).toMatchObject({ route: '/api/v1/events/:id', params: { id }, status: 200 })
    expect(log[2]).toMatchObject({ route: '/api/v1/stats/top', query: { field: 'mac', q: 'ip:192.0.2.10' } })
    expect(log.slice(3).map((e) => [e.key, e.route, e.status])).toEqual([
      ['reader', '/api/v1/stats/histogram', 200], ['reader', '/api/v1/alerts', 200], ['reader', '/api/v1/snapshots', 200], ['reader', '/api/v1/snapshots/latest', 200],
      ['reader', '/api/v1/deadletter', 403], ['reader', '/api/v1/events', 400], ['ops', '/api/v1/deadletter/retry', 0], ['ops', '/api/v1/deadletter/retry', 200]
    ])
  })

  it('snapshots, latest, alerts, histogram, top', async () => {
    expect((await same('/api/v1/snapshots?server=kea-a&from=2026-11-24T00:00:00Z')).body.snapshots).toHaveLength(1)
    expect((await same('/api/v1/snapshots/latest')).body.snapshots[0]).toMatchObject({ server: 'kea-a', state: 'up' })
    expect((await same('/api/v1/alerts')).body.events).toEqual([])
    const h = await same('/api/v1/stats/histogram?q=level:info&from=2026-11-24T18:00:00Z&to=2026-11-24T18:10:00Z&interval=1m')
    expect(h.body.buckets.reduce((n: number, b: { count: number }) => n + b.count, 0)).toBeGreaterThan(100)
    const top = await same('/api/v1/stats/top?field=code&size=3')
    expect(top.body.values[0]).toEqual({ value: 'DHCP4_LEASE_ALLOC', count: 121 })
  })

  it('histogram: the interval is capped and the buckets always counted; the store always gets a bounded range', async () => {
    for (const url of ['/api/v1/stats/histogram?interval=999999999d', '/api/v1/stats/histogram?interval=367d&from=2026-01-01T00:00:00Z']) {
      for (const a of await both(url)) expect([url, a.status, a.body.message]).toEqual([url, 400, 'interval must be at most 366d'])
    }
    // No from: a day before to; one-second buckets over a day are too many, whatever the store holds.
    for (const a of await both('/api/v1/stats/histogram?interval=1s')) expect([a.status, a.body.message]).toEqual([400, 'at most 5000 buckets: 86400 requested; widen the interval or narrow from/to'])
    for (const a of await both('/api/v1/stats/histogram?interval=1s&from=1970-01-01T00:00:00Z&to=2026-11-25T00:00:00Z')) expect(a.status).toBe(400)
    const calls: Array<{ from?: number, to?: number }> = []
    const real = stores.sqlite as Store
    const spy = new Proxy(real, { get: (t, k) => k === 'histogram' ? async (q: { from?: number, to?: number }, ms: number) => { calls.push(q); return await t.histogram(q, ms) } : Reflect.get(t, k) })
    const app = await buildApp({ store: spy, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }] } })
    const day = (await app.inject({ url: '/api/v1/stats/histogram?interval=1h&to=2026-11-25T00:00:00Z', headers: auth })).json()
    expect(day.buckets.length).toBeGreaterThan(0)
    expect(day.buckets.every((b: { key: number }) => b.key >= Date.parse('2026-11-24T00:00:00Z'))).toBe(true)
    const before = Date.now()
    expect((await app.inject({ url: '/api/v1/stats/histogram?interval=1h', headers: auth })).statusCode).toBe(200)
    await app.close()
    expect(calls[0]).toMatchObject({ from: Date.parse('2026-11-24T00:00:00Z'), to: Date.parse('2026-11-25T00:00:00Z') })
    expect(calls[1]?.to).toBeGreaterThanOrEqual(before)
    expect((calls[1]?.to ?? 0) - (calls[1]?.from ?? 0)).toBe(86_400_000)
  })

  it('health, readiness, metrics, OpenAPI and the UI page', async () => {
    const app = apps.sqlite as FastifyInstance
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' })
    expect((await app.inject({ url: '/readyz' })).json()).toMatchObject({ ready: true })
    const metrics = await app.inject({ url: '/metrics', headers: auth })
    expect(metrics.body).toMatch(/keatrail_http_requests_total\{route="\/api\/v1\/events",status="200"\} \d+/)
    expect(metrics.body).toContain('keatrail_store_write_seconds_bucket')
    const doc = (await app.inject({ url: '/docs/json' })).json() as { paths: Record<string, unknown> }
    for (const p of ['/api/v1/events', '/api/v1/leases/at', '/api/v1/leases/history', '/api/v1/snapshots', '/api/v1/stats/top']) expect(doc.paths[p], p).toBeDefined()
    const ui = await app.inject({ url: '/' })
    expect(ui.headers['content-type']).toMatch(/text\/html/)
    expect(ui.body).toContain('<title>keatrail</title>')
  })

  describe('authentication is decided from the matched route (real socket, raw request lines)', () => {
    let app: FastifyInstance
    let port = 0
    beforeAll(async () => {
      app = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }], rateLimit: { max: 100_000, failedAuthMax: 100_000, windowMs: 60_000 } } })
      const url = await app.listen({ host: '127.0.0.1', port: 0 })
      port = Number(new URL(url).port)
    })
    afterAll(async () => { await app.close() })

    for (const line of UNAUTHENTICATED_VARIANTS) {
      it(`401 without a key: ${line}`, async () => {
        const r = await rawRequest(port, line)
        expect(r.status, r.body).toBe(401)
        if (!line.startsWith('HEAD')) expect(JSON.parse(r.body)).toEqual({ code: 'KEATRAIL_ERR_AUTH', message: expect.any(String) })
        expect(r.body).not.toMatch(/DHCP|"events"|keatrail_/)
      })
    }

    it('the same requests with a key reach their routes; leases and admin routes answer', async () => {
      const reader = { authorization: `Bearer ${KEY}` }
      expect((await rawRequest(port, 'GET /%61pi/v1/events?size=1 HTTP/1.1', reader)).status).toBe(200)
      expect((await rawRequest(port, 'GET http://x/api/v1/events?size=1 HTTP/1.1', reader)).status).toBe(200)
      expect((await rawRequest(port, 'GET /%6detrics HTTP/1.1', reader)).status).toBe(200)
      expect((await rawRequest(port, 'GET /api/v1/leases/history?mac=02-00-00-00-00-0a HTTP/1.1', reader)).status).toBe(200)
      expect((await rawRequest(port, 'GET /api/v1/deadletter HTTP/1.1', reader)).status).toBe(403)
      expect((await rawRequest(port, 'GET /%61pi/v1/deadletter HTTP/1.1', { authorization: `Bearer ${ADMIN}` })).status).toBe(200)
      // An unknown path with a key: a plain 404.
      expect(JSON.parse((await rawRequest(port, 'GET /api/v1/nosuchroute HTTP/1.1', reader)).body)).toMatchObject({ code: 'KEATRAIL_ERR_NOT_FOUND' })
    })

    it('public routes need no key: the UI page, health, readiness, the OpenAPI explorer', async () => {
      for (const line of ['GET / HTTP/1.1', 'GET /healthz HTTP/1.1', 'GET /readyz HTTP/1.1', 'GET /docs/json HTTP/1.1', 'GET /docs/static/index.html HTTP/1.1', 'GET /docs/static/swagger-ui.css HTTP/1.1']) {
        expect([line, (await rawRequest(port, line)).status]).toEqual([line, line.includes('index.html') ? 302 : 200])
      }
    })
  })

  it('without keys on loopback, only requests addressed to a loopback name are answered (DNS rebinding)', async () => {
    const app = await buildApp({ store: stores.sqlite as Store })
    const port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port)
    try {
      for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1.evil.example', 'localhost.evil.example', '[::1].evil', '0.0.0.0', '']) {
        const r = await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', { host })
        expect([host, r.status, JSON.parse(r.body).code]).toEqual([host, 421, 'KEATRAIL_ERR_HOST_NOT_ALLOWED'])
      }
      // The UI page too: a rebound page must not even get the app to run in its origin.
      expect((await rawRequest(port, 'GET / HTTP/1.1', { host: 'evil.example' })).status).toBe(421)
      expect((await rawRequest(port, 'GET http://evil.example/api/v1/events?size=1 HTTP/1.1', { host: 'localhost' })).status).toBe(421)
      for (const host of ['localhost', `localhost:${port}`, `127.0.0.1:${port}`, '127.3.2.1', `[::1]:${port}`, 'LOCALHOST']) {
        expect([host, (await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', { host })).status]).toEqual([host, 200])
      }
    } finally { await app.close() }
    // With keys, or exposed on purpose (insecure), the name is not checked: the key is the guard.
    const keyed = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }] } })
    expect((await keyed.inject({ url: '/api/v1/events?size=1', headers: { host: 'kea-logs.example', ...auth } })).statusCode).toBe(200)
    await keyed.close()
    const open = await buildApp({ store: stores.sqlite as Store, api: { host: '0.0.0.0', insecure: true } })
    expect((await open.inject({ url: '/api/v1/events?size=1', headers: { host: 'kea-logs.example' } })).statusCode).toBe(200)
    await open.close()
  })

  it('without keys, a request a browser sends for another site is refused (cross-site request forgery)', async () => {
    const app = await buildApp({ store: stores.sqlite as Store })
    const port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port)
    try {
      const forged = [
        ['POST /api/v1/deadletter/retry?limit=100000 HTTP/1.1', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain', 'content-length': '3' }],
        ['GET /api/v1/events?q=mac:02-00-00-00-00-0a HTTP/1.1', { 'sec-fetch-site': 'cross-site' }],
        ['GET /api/v1/events?size=1 HTTP/1.1', { 'sec-fetch-site': 'same-site' }],
        ['GET /api/v1/events?size=1 HTTP/1.1', { origin: 'null' }],
        ['GET /api/v1/events?size=1 HTTP/1.1', { origin: 'http://127.0.0.1.evil.example' }]
      ] as const
      for (const [line, headers] of forged) {
        const r = await rawRequest(port, line, headers)
        expect([line, headers, r.status, JSON.parse(r.body).code]).toEqual([line, headers, 403, 'KEATRAIL_ERR_CROSS_SITE'])
      }
      // The UI's own requests, and clients that are not browsers, are served.
      for (const headers of [{}, { 'sec-fetch-site': 'same-origin', origin: `http://127.0.0.1:${port}` }, { 'sec-fetch-site': 'none' }, { origin: `http://localhost:${port}`, host: `localhost:${port}` }] as Array<Record<string, string>>) {
        expect([headers, (await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', headers)).status]).toEqual([headers, 200])
      }
    } finally { await app.close() }
    // Exposed without keys on purpose (insecure): the UI's own origin is the name it is reached by.
    const open = await buildApp({ store: stores.sqlite as Store, api: { host: '0.0.0.0', insecure: true } })
    const openPort = Number(new URL(await open.listen({ host: '127.0.0.1', port: 0 })).port)
    try {
      const line = 'GET /api/v1/events?size=1 HTTP/1.1'
      expect((await rawRequest(openPort, line, { host: 'kea-logs.example', origin: 'http://kea-logs.example', 'sec-fetch-site': 'same-origin' })).status).toBe(200)
      expect((await rawRequest(openPort, line, { host: 'kea-logs.example', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })).status).toBe(403)
      expect((await rawRequest(openPort, line, { host: 'kea-logs.example', origin: 'https://evil.example' })).status).toBe(403)
    } finally { await open.close() }
  })

  it('CORS is refused without keys: any page could read the API through the browser', async () => {
    await expect(buildApp({ store: stores.sqlite as Store, api: { cors: true } })).rejects.toMatchObject({ code: 'KEATRAIL_ERR_USAGE' })
    const keyed = await buildApp({ store: stores.sqlite as Store, api: { cors: true, keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }] } })
    expect((await keyed.inject({ url: '/api/v1/events?size=1', headers: auth })).headers['access-control-allow-origin']).toBe('*')
    await keyed.close()
  })

  it('a client that dribbles its request is cut off; a refused one gets no kept-alive socket; data answers are not cached', async () => {
    const app = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }], requestTimeoutMs: 1000 } })
    const port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port)
    try {
      const closed = await new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port })
        // A body announced and never sent: only the request timeout ends this.
        socket.on('connect', () => socket.write(`POST /api/v1/deadletter/retry HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: ${auth.authorization}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{`))
        const giveUp = setTimeout(() => { socket.destroy(); resolve('still open after 10 s') }, 10_000)
        socket.on('error', () => undefined)
        socket.on('close', () => { clearTimeout(giveUp); resolve('closed') })
        socket.resume()
      })
      expect(closed).toBe('closed')
      const refused = await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', { connection: 'keep-alive' })
      expect([refused.status, refused.headers.connection]).toEqual([401, 'close'])
      const ok = await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', auth)
      expect([ok.status, ok.headers['cache-control']]).toEqual([200, 'no-store'])
    } finally { await app.close() }
  })

  it('an events page serialised where the read ran is the same JSON as one serialised here', async () => {
    const real = stores.sqlite as Store
    expect(real.searchSerialized).toBeDefined()
    const plain = new Proxy(real, { get: (t, k) => k === 'searchSerialized' ? undefined : Reflect.get(t, k) })
    const [a, b] = [await buildApp({ store: real }), await buildApp({ store: plain })]
    try {
      for (const url of ['/api/v1/events?size=3', '/api/v1/events?q=mac:00:0c:01:02:03:12&size=2&sort=asc', '/api/v1/events?q=nothing_matches_this', '/api/v1/events?size=1000']) {
        let [x, y] = [await a.inject({ url }), await b.inject({ url })]
        for (let page = 0; page < 3; page++) {
          expect(x.statusCode, url).toBe(200)
          expect(x.headers['content-type']).toBe(y.headers['content-type'])
          expect(x.body, url).toBe(y.body)
          const cursor = (x.json() as { cursor?: string }).cursor
          if (cursor === undefined) break
          ;[x, y] = [await a.inject({ url: `${url}&cursor=${encodeURIComponent(cursor)}` }), await b.inject({ url: `${url}&cursor=${encodeURIComponent(cursor)}` })]
        }
      }
    } finally { await a.close(); await b.close() }
  })

  it('a key whose query ran past the deadline waits before its next request; other keys do not', async () => {
    const real = stores.sqlite as Store
    const slow = new Proxy(real, { get: (t, k) => (k === 'search' || k === 'searchSerialized') ? async () => { throw new QueryTimeoutError(10_000) } : Reflect.get(t, k) })
    const app = await buildApp({ store: slow, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }, { name: 'admin', role: 'admin', sha256: apiKeyHash(ADMIN) }] } })
    try {
      const first = await app.inject({ url: '/api/v1/events?q=ip:0.0.0.0/0', headers: auth })
      expect([first.statusCode, first.json().code]).toEqual([503, 'KEATRAIL_ERR_QUERY_TIMEOUT'])
      const next = await app.inject({ url: '/api/v1/leases/at?address=192.0.2.10&time=2026-11-24T18:02:30Z', headers: auth })
      expect([next.statusCode, next.json().code]).toEqual([429, 'KEATRAIL_ERR_RATE_LIMIT'])
      expect(next.json().message).toMatch(/ran past the store's deadline/)
      expect((await app.inject({ url: '/api/v1/whoami', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode).toBe(200)
    } finally { await app.close() }
  })

  it('an error from a library is a 500 without its text, whatever status it carries (an Elasticsearch 401 is not the client\'s)', async () => {
    const real = stores.sqlite as Store
    const esError = Object.assign(new Error('security_exception: unable to authenticate user [keatrail_writer] for REST request [/keatrail-snapshots-default/_search]'), { statusCode: 401 })
    const failing = new Proxy(real, { get: (t, k) => (k === 'search' || k === 'searchSerialized') ? async () => { throw esError } : Reflect.get(t, k) })
    const app = await buildApp({ store: failing })
    const r = await app.inject({ url: '/api/v1/events?size=1' })
    expect([r.statusCode, r.json()]).toEqual([500, { code: 'KEATRAIL_ERR_INTERNAL', message: 'internal error' }])
    await app.close()
  })

  it('503 QUERY_TIMEOUT and QUERY_BUSY keep their message (written for the client); a store or uncoded 5xx does not', async () => {
    const real = stores.sqlite as Store
    // As a reader worker's error reaches the main thread (reader-pool.ts fromReply): code and status on a plain Error.
    const fromWorker = Object.assign(new Error(new QueryBusyError(8).message), { code: 'KEATRAIL_ERR_QUERY_BUSY', statusCode: 503 })
    const failing = new Proxy(real, {
      get: (t, k) => (k === 'search' || k === 'searchSerialized')
        ? async () => { throw new QueryTimeoutError(5000) }
        : k === 'top' ? async () => { throw fromWorker }
          : k === 'histogram' ? async () => { throw new StoreReadError('sqlite', 'SQLITE_CORRUPT: /var/lib/keatrail/keatrail.db') } : Reflect.get(t, k)
    })
    // No deadline penalty here: this test is about the messages, the penalty has its own test.
    const app = await buildApp({ store: failing, api: { rateLimit: { timeoutPenaltyMs: 0 } } })
    const search = await app.inject({ url: '/api/v1/events?size=1' })
    expect([search.statusCode, search.json()]).toEqual([503, { code: 'KEATRAIL_ERR_QUERY_TIMEOUT', message: new QueryTimeoutError(5000).message }])
    expect(search.json<{ message: string }>().message).toMatch(/time budget of 5000 ms/)
    const top = await app.inject({ url: '/api/v1/stats/top?field=mac' })
    expect([top.statusCode, top.json()]).toEqual([503, { code: 'KEATRAIL_ERR_QUERY_BUSY', message: 'Too many queries are waiting (8 queued); retry in a moment' }])
    const hist = await app.inject({ url: '/api/v1/stats/histogram?interval=1h' })
    expect(hist.statusCode).toBeGreaterThanOrEqual(500)
    expect(hist.body).not.toMatch(/SQLITE_CORRUPT|keatrail\.db/)
    await app.close()
  })

  it('a lease history runs on a reader worker, within its deadline: over a real socket, 503 KEATRAIL_ERR_QUERY_TIMEOUT', async () => {
    // The store's own file, read by a store whose readers have 1 ms (less than a worker takes to start).
    const hurried = new SqliteStore({ path: (stores.sqlite as SqliteStore).path, readers: { workers: 1, queryTimeoutMs: 1 } })
    const served = await serveApi(hurried, { port: 0 }, mkdtempSync(join(tmpdir(), 'kt-api-lease-deadline-')), {})
    try {
      const r = await fetch(`${served.url}/api/v1/leases/history?mac=${encodeURIComponent('00:0c:01:02:03:12')}`)
      expect([r.status, ((await r.json()) as { code?: string }).code]).toEqual([503, 'KEATRAIL_ERR_QUERY_TIMEOUT'])
    } finally {
      await served.app.close()
      await hurried.close()
    }
  })

  it('the audit log file is 0600 and a directory made for it 0700, whatever the umask; no entry lost at close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-audit-'))
    const path = join(dir, 'made', 'here', 'audit.log')
    const old = process.umask(0)
    let served: Awaited<ReturnType<typeof serveApi>>
    try {
      served = await serveApi(stores.sqlite as Store, { port: 0, auditLog: path, keys: [{ name: 'reader', sha256: apiKeyHash(KEY) }] }, dir, {})
    } finally { process.umask(old) }
    for (let i = 0; i < 20; i++) expect((await fetch(`${served.url}/api/v1/events?size=1&q=ip:192.0.2.${i}`, { headers: auth })).status).toBe(200)
    await served.app.close()
    expect((statSync(path).mode & 0o777).toString(8)).toBe('600')
    expect((statSync(join(dir, 'made')).mode & 0o777).toString(8)).toBe('700')
    expect((statSync(join(dir, 'made', 'here')).mode & 0o777).toString(8)).toBe('700')
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry)
    expect(lines.map((l) => l.query.q)).toEqual(Array.from({ length: 20 }, (_, i) => `ip:192.0.2.${i}`))
    // An existing, readable file is brought back to 0600.
    const loose = join(dir, 'loose.log')
    writeFileSync(loose, '', { mode: 0o644 })
    const again = await serveApi(stores.sqlite as Store, { port: 0, auditLog: loose }, dir, {})
    await again.app.close()
    expect((statSync(loose).mode & 0o777).toString(8)).toBe('600')
  })

  it('every answer: nosniff, no referrer, a CSP that forbids framing; the UI runs its inline code by hash, not unsafe-inline', async () => {
    const app = apps.sqlite as FastifyInstance
    for (const [url, headers] of [['/api/v1/events?size=1', auth], ['/api/v1/events', {}], ['/nosuch', auth], ['/healthz', {}], ['/', {}], ['/docs', {}], ['/docs/json', {}], ['/metrics', auth], ['/%zzapi/v1/events', {}], [`/api/v1/events/${'x'.repeat(600)}`, {}]] as Array<[string, Record<string, string>]>) {
      const r = await app.inject({ url, headers })
      expect([url, r.headers['x-content-type-options'], r.headers['referrer-policy']]).toEqual([url, 'nosniff', 'no-referrer'])
      expect(r.headers['content-security-policy'], url).toMatch(/frame-ancestors 'none'/)
      expect(r.headers['content-security-policy'], url).not.toMatch(/unsafe-inline|upgrade-insecure-requests/)
    }
    expect((await app.inject({ url: '/api/v1/events?size=1', headers: auth })).headers['content-security-policy']).toMatch(/^default-src 'none'/)
    const page = readFileSync(new URL('../../ui/index.html', import.meta.url), 'utf8')
    const digest = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`
    const csp = (await app.inject({ url: '/' })).headers['content-security-policy'] as string
    expect(csp).toContain(`script-src ${digest(page.split('<script>')[1]?.split('</script>')[0] ?? '')};`)
    expect(csp).toContain(`style-src ${digest(page.split('<style>')[1]?.split('</style>')[0] ?? '')};`)
    // No style attribute in the markup (the CSP refuses them; test/api/ui.test.ts checks the script's in chromium).
    expect(page).not.toMatch(/\sstyle=/)
  })

  describe('bad input: a 4xx with a clear message, nothing executed, nothing leaked', () => {
    it('a query the store cannot run: a clear 400 or a 5xx with a code and a generic message, never the store\'s text', async () => {
      // A NUL inside a phrase, NOT nested past SQLite's limits: SQLite said "unterminated string",
      // "Recursion limit", "Expression tree is too large" to the client.
      for (const url of ['/api/v1/events?q=%22a%00%22', `/api/v1/events?q=${'NOT%20'.repeat(1000)}a`, `/api/v1/events?q=${'NOT%20'.repeat(600)}a`, `/api/v1/stats/top?field=mac&q=${'NOT%20'.repeat(1000)}a`]) {
        for (const a of await both(url)) {
          // Elasticsearch runs some of them: an answer is fine, an error must be one of ours.
          if (a.status === 200) continue
          expect(JSON.stringify(a.body)).not.toMatch(LEAK)
          expect(a.body).toMatchObject({ code: expect.stringMatching(/^KEATRAIL_ERR_/), message: expect.any(String) })
          if (a.status >= 500) expect(a.body.message).toBe('the store could not answer this query (the service log has the detail)')
          else expect(a.status).toBe(400)
        }
      }
    })

    it('a store failure is logged with its detail and stack, and answered with the code only', async () => {
      const lines: string[] = []
      const real = stores.sqlite as Store
      const broken = new Proxy(real, {
        get: (t, k) => (k === 'search' || k === 'searchSerialized')
          ? async () => { throw withCause(new StoreReadError('sqlite', 'fts5: syntax error near "\'"'), new Error('SQLITE_ERROR: no such column: x')) }
          : k === 'top' ? async () => { throw new TypeError('Cannot read properties of undefined (reading \'rows\')') } : Reflect.get(t, k)
      })
      const app = await buildApp({ store: broken, logger: { level: 'error', stream: { write: (l: string) => { lines.push(l) } } } })
      const search = await app.inject({ url: '/api/v1/events?q=a' })
      expect([search.statusCode, search.json()]).toEqual([503, { code: 'KEATRAIL_ERR_STORE_READ', message: 'the store could not answer this query (the service log has the detail)' }])
      const top = await app.inject({ url: '/api/v1/stats/top?field=mac' })
      expect([top.statusCode, top.json()]).toEqual([500, { code: 'KEATRAIL_ERR_INTERNAL', message: 'internal error' }])
      for (const r of [search, top]) expect(r.body).not.toMatch(LEAK)
      await app.close()
      const logged = lines.map((l) => JSON.parse(l) as { msg: string, code: string, err: { message: string, stack: string } })
      expect(logged).toMatchObject([
        { code: 'KEATRAIL_ERR_STORE_READ', msg: 'GET /api/v1/events failed', err: { message: expect.stringContaining('fts5: syntax error near') } },
        { code: 'KEATRAIL_ERR_INTERNAL', msg: 'GET /api/v1/stats/top failed', err: { message: expect.stringContaining('reading \'rows\'') } }
      ])
      for (const l of logged) expect(l.err.stack).toMatch(/\n\s+at /)
    })

    it('readiness does not tell anyone the store\'s path or its error text', async () => {
      const real = stores.sqlite as Store
      const down = new Proxy(real, { get: (t, k) => k === 'health' ? async () => ({ ok: false, detail: 'SQLITE_CANTOPEN: unable to open database file /var/lib/keatrail/keatrail.db' }) : Reflect.get(t, k) })
      const app = await buildApp({ store: down })
      const r = await app.inject({ url: '/readyz' })
      expect([r.statusCode, r.json()]).toEqual([503, { ready: false, store: 'sqlite unavailable', sources: true, sourceStates: {}, audit: 'off' }])
      expect((await (apps.sqlite as FastifyInstance).inject({ url: '/readyz' })).json()).toEqual({ ready: true, store: 'sqlite ok', sources: true, sourceStates: {}, audit: 'ok' })
      await app.close()
    })

    const cases: Array<[string, number, string | RegExp]> = [
      ['/api/v1/events?q=mac:', 400, 'KEATRAIL_ERR_QUERY_SYNTAX'],
      ['/api/v1/events?q=nosuchfield:1', 400, /a known field, not \\"nosuchfield\\"/],
      ['/api/v1/events?size=100000', 400, /size/],
      ['/api/v1/events?cursor=eyJjIjoiYWJjIiwiaCI6Inh4eCJ9', 400, 'KEATRAIL_ERR_CURSOR_INVALID'],
      ['/api/v1/events?cursor=%25%25%25garbage', 400, 'KEATRAIL_ERR_CURSOR_INVALID'],
      ['/api/v1/events?from=2999-01-01T00:00:00Z', 400, /in the future/],
      ['/api/v1/events?from=yesterday', 400, /RFC 3339/],
      [`/api/v1/events?q=${'a%20'.repeat(3000)}`, 400, /q/],
      ['/api/v1/events?q=%FF%FE', 400, /UTF-8/],
      ["/api/v1/events?q=')%20OR%201%3D1%20--", 400, 'KEATRAIL_ERR_QUERY_SYNTAX'],
      ['/api/v1/events?q=%7B%22script%22%3A%7B%22source%22%3A%22x%22%7D%7D', 400, 'KEATRAIL_ERR_QUERY_SYNTAX'],
      ['/api/v1/events?unknown=1', 400, 'KEATRAIL_ERR_VALIDATION'],
      ['/api/v1/leases/at?address=300.1.1.1&time=2026-11-24T00:00:00Z', 400, /not an IPv4 or IPv6/],
      ['/api/v1/leases/history?mac=zz', 400, /not a valid MAC/],
      ['/api/v1/leases/history?mac=02:00:00:00:00:0a&duid=00:01', 400, /exactly one/],
      ['/api/v1/stats/top?field=doc', 400, 'KEATRAIL_ERR_VALIDATION'],
      ['/api/v1/stats/histogram?interval=1ms&from=2026-01-01T00:00:00Z', 400, /at least 1s/]
    ]
    for (const [url, status, msg] of cases) {
      it(url.slice(0, 80), async () => {
        for (const a of await both(url)) {
          expect(a.status).toBe(status)
          expect(a.body).toMatchObject({ code: expect.stringMatching(/^KEATRAIL_ERR_/), message: expect.any(String) })
          expect(JSON.stringify(a.body)).toMatch(msg)
          expect(JSON.stringify(a.body)).not.toMatch(LEAK)
        }
      })
    }

    it('a cursor from another query is refused', async () => {
      for (const k of kinds) {
        const app = apps[k] as FastifyInstance
        const p = (await app.inject({ url: '/api/v1/events?q=code:DHCP4_LEASE_ALLOC&size=2', headers: auth })).json() as { cursor: string }
        const other = await app.inject({ url: `/api/v1/events?q=code:DHCP6_LEASE_ALLOC&size=2&cursor=${p.cursor}`, headers: auth })
        expect([other.statusCode, other.json().code]).toEqual([400, 'KEATRAIL_ERR_CURSOR_INVALID'])
      }
    })

    it('no key, a wrong key: 401; the key\'s role is known', async () => {
      for (const a of await both('/api/v1/events', {})) expect(a).toMatchObject({ status: 401, body: { code: 'KEATRAIL_ERR_AUTH' } })
      for (const a of await both('/api/v1/events', { authorization: 'Bearer kt_wrong-key-012345' })) expect(a.status).toBe(401)
      expect((await both('/api/v1/whoami', { authorization: `Bearer ${ADMIN}` }))[0]?.body).toEqual({ name: 'ops', role: 'admin' })
    })

    it('dead letters: admin only; listed with the reason and retried into the store', async () => {
      const dlq = new DeadLetterStore(':memory:')
      const store = new SqliteStore({ path: ':memory:' })
      const { events } = await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'x' })
      dlq.add('elasticsearch', events.slice(0, 3).map((event) => ({ event, reason: '400 mapper_parsing_exception: failed to parse field [kea.iaid]' })))
      const app = await buildApp({ store, deadLetters: dlq, api: { keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }] } })
      const reader = await app.inject({ url: '/api/v1/deadletter', headers: auth })
      expect([reader.statusCode, reader.json().code]).toEqual([403, 'KEATRAIL_ERR_FORBIDDEN'])
      const admin = { authorization: `Bearer ${ADMIN}` }
      const list = (await app.inject({ url: '/api/v1/deadletter', headers: admin })).json()
      expect(list).toMatchObject({ count: 3, entries: [{ store: 'elasticsearch', reason: expect.stringContaining('mapper_parsing_exception') }, {}, {}] })
      expect((await app.inject({ method: 'POST', url: '/api/v1/deadletter/retry', headers: auth })).statusCode).toBe(403)
      const retry = (await app.inject({ method: 'POST', url: '/api/v1/deadletter/retry', headers: admin })).json()
      expect(retry).toEqual({ retried: 3, written: 3, duplicates: 0, deadLettered: 0, unreadable: 0, remaining: 0 })
      expect(await store.count()).toBe(3)
      await app.close()
      await store.close()
      dlq.close()
    })

    it('rate limit per key: key A using up its window does not limit key B; refused attempts are limited per address', async () => {
      const OTHER = 'kt_test-other-key-0123456789'
      const app = await buildApp({ store: stores.sqlite as Store, api: { keys: [{ name: 'a', sha256: apiKeyHash(KEY) }, { name: 'b', sha256: apiKeyHash(OTHER) }], rateLimit: { max: 3, failedAuthMax: 2, windowMs: 60_000 } } })
      const codes = async (headers: Record<string, string>, n: number): Promise<number[]> => {
        const out = []
        for (let i = 0; i < n; i++) out.push((await app.inject({ url: '/api/v1/events?size=1', headers })).statusCode)
        return out
      }
      expect(await codes({ authorization: `Bearer ${KEY}` }, 5)).toEqual([200, 200, 200, 429, 429])
      expect((await app.inject({ url: '/api/v1/events?size=1', headers: { authorization: `Bearer ${KEY}` } })).json()).toMatchObject({ code: 'KEATRAIL_ERR_RATE_LIMIT' })
      // Key B has its own window.
      expect(await codes({ authorization: `Bearer ${OTHER}` }, 2)).toEqual([200, 200])
      // Without a key, and with a wrong one: 401 until the address's budget is used, then 429.
      expect(await codes({}, 1).then(async (a) => a.concat(await codes({ authorization: 'Bearer kt_wrong-key-012345' }, 3)))).toEqual([401, 401, 429, 429])
      // A valid key is not blocked by the refused attempts from the same address.
      expect(await codes({ authorization: `Bearer ${OTHER}` }, 1)).toEqual([200])
      // Public routes need no key but have a budget per address (readiness asks the store).
      const pub = []
      for (let i = 0; i < 4; i++) pub.push((await app.inject({ url: '/readyz' })).statusCode)
      expect(pub).toEqual([200, 200, 200, 429])
      await app.close()
      // Keyless (loopback): one bucket for everyone.
      const keyless = await buildApp({ store: stores.sqlite as Store, api: { rateLimit: { max: 2, windowMs: 60_000 } } })
      const k = []
      for (let i = 0; i < 3; i++) k.push((await keyless.inject({ url: '/api/v1/events?size=1' })).statusCode)
      expect(k).toEqual([200, 200, 429])
      await keyless.close()
    })

    it('refuses to listen beyond loopback without keys unless insecure', () => {
      expect(() => { checkExposure(apiConfigSchema.parse({ host: '0.0.0.0' })) }).toThrow(/refusing to serve the API on 0\.0\.0\.0 without API keys/)
      expect(() => { checkExposure(apiConfigSchema.parse({ host: '0.0.0.0', insecure: true })) }).not.toThrow()
      expect(() => { checkExposure(apiConfigSchema.parse({ host: '::1' })) }).not.toThrow()
      const page = readFileSync(new URL('../../ui/index.html', import.meta.url), 'utf8')
      expect(page).not.toMatch(/innerHTML/)
      // The page's script compiles (a syntax error there would leave the UI dead).
      expect(() => new Function(page.split('<script>')[1]?.split('</script>')[0] ?? '')).not.toThrow()
    })
  })
})
