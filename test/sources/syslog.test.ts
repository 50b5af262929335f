import fc from 'fast-check'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SyslogFramer } from '../../src/sources/syslog/frame.js'
import { parseSyslog } from '../../src/sources/syslog/header.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

const quiet = { info: () => {}, error: () => {} }
const LEASE = 'INFO  [kea-dhcp4.leases.139952574804480] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x7f74d74a: lease 192.0.2.10 has been allocated for 40 seconds'

describe('syslog framing (RFC 6587)', () => {
  it('splits octet-counted and LF-framed messages at any chunk boundary', () => {
    const stream = Buffer.from(`12 <134>hello A\n<134>plain B\n7 <13>xyz6 <1>abc<6>last C\n`)
    const want = ['<134>hello A', '<134>plain B', '<13>xyz', '<1>abc', '<6>last C']
    for (let cut = 0; cut <= stream.length; cut++) {
      for (let cut2 = cut; cut2 <= stream.length; cut2 += 7) {
        const f = new SyslogFramer(1024)
        const got: string[] = []
        for (const part of [stream.subarray(0, cut), stream.subarray(cut, cut2), stream.subarray(cut2)]) f.push(part, (m) => got.push(m.toString()))
        f.end((m) => got.push(m.toString()))
        expect(got, `cut at ${cut}/${cut2}`).toEqual(want)
      }
    }
  })

  it('random octet-counted streams (LF and UTF-8 inside frames) give the same frames however TCP cuts them', () => {
    const body = fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '\n', 'é', '→', '<', '1', '[', ']'), minLength: 1, maxLength: 60 })
    fc.assert(fc.property(fc.array(body, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(400), { maxLength: 6 }), (bodies, cuts) => {
      const frames = bodies.map((b) => `<134>${b}`)
      const stream = Buffer.concat(frames.map((m) => Buffer.from(`${Buffer.byteLength(m)} ${m}`)))
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const f = new SyslogFramer(4096)
      const got: string[] = []
      let at = 0
      for (const p of [...points, stream.length]) { f.push(stream.subarray(at, p), (m) => got.push(m.toString())); at = p }
      f.end((m) => got.push(m.toString()))
      expect(got).toEqual(frames)
    }), { numRuns: 500 })
  })

  it('joins a frame that arrives a byte at a time once, not once per byte (hostile senders: 340 ms of copying per 64 KB)', () => {
    const body = Buffer.alloc(60_000, 0x61)
    const lf = Buffer.concat([Buffer.from('<14>'), body, Buffer.from('\n')])
    const octet = Buffer.concat([Buffer.from(`${lf.length - 1} `), lf.subarray(0, -1)])
    const long = Buffer.concat([Buffer.from('<14>'), Buffer.alloc(70_000, 0x62), Buffer.from('\n<14>after\n')])
    const concat = vi.spyOn(Buffer, 'concat')
    try {
      for (const stream of [lf, octet, long]) {
        concat.mockClear()
        const f = new SyslogFramer(64 * 1024)
        const got: Array<[number, boolean]> = []
        for (let i = 0; i < stream.length; i++) f.push(stream.subarray(i, i + 1), (m, t) => got.push([m.length, t]))
        f.end((m, t) => got.push([m.length, t]))
        expect(got).toEqual(stream === long ? [[64 * 1024, true], [9, false]] : [[60_004, false]])
        expect(f.heldBytes).toBe(0)
        // A frame's first 11 bytes decide its framing (joined as they come), then one join per
        // frame: ~12 per frame here, against one per byte (60,000) before.
        expect(concat.mock.calls.length).toBeLessThan(40)
      }
    } finally {
      concat.mockRestore()
    }
  })

  it('cuts oversized frames without buffering them, and resynchronises', () => {
    const f = new SyslogFramer(8)
    const got: Array<[string, boolean]> = []
    f.push(Buffer.from('23 <1>0123456789'), (m, t) => got.push([m.toString(), t]))
    f.push(Buffer.from('abcdefghij<1>this is long\n5 <2>ok'), (m, t) => got.push([m.toString(), t]))
    expect(got).toEqual([['<1>01234', true], ['<1>this ', true], ['<2>ok', false]])
  })
})

describe('syslog headers', () => {
  const utc = (w: number): number => w
  const now = Date.UTC(2026, 10, 24, 12)
  it('reads RFC 3164 as Kea sends it to /dev/log (no host) and as forwarded (with host)', () => {
    expect(parseSyslog(`<134>Nov 24 09:23:04 kea-dhcp4: ${LEASE}`, now, utc)).toMatchObject({ format: 'rfc3164', facility: 16, severity: 6, app: 'kea-dhcp4', host: undefined, time: Date.UTC(2026, 10, 24, 9, 23, 4), body: LEASE })
    expect(parseSyslog(`<132>Nov  4 09:23:04 kea-a kea-dhcp4[17]: x`, now, utc)).toMatchObject({ host: 'kea-a', app: 'kea-dhcp4', procId: '17', severity: 4, body: 'x' })
  })

  it('puts a December message read in January into last year', () => {
    expect(parseSyslog('<134>Dec 31 23:59:00 h app: x', Date.UTC(2027, 0, 1, 0, 5), utc)?.time).toBe(Date.UTC(2026, 11, 31, 23, 59))
  })

  it('reads RFC 5424 with structured data', () => {
    expect(parseSyslog(`<134>1 2026-11-24T09:23:04.123456+01:00 kea-b kea-dhcp4 17 LEASE [x@1 a="b\\]"] ${LEASE}`, now, utc)).toMatchObject({
      format: 'rfc5424', host: 'kea-b', app: 'kea-dhcp4', procId: '17', msgId: 'LEASE', structuredData: '[x@1 a="b\\]"]', time: Date.UTC(2026, 10, 24, 8, 23, 4, 123), body: LEASE
    })
  })
})

describe('syslog source with real senders', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-syslog-'))
  let store: SqliteStore
  let source: SyslogSource
  let pipeline: Pipeline
  const stop = new AbortController()
  let running: Promise<void>

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    store = new SqliteStore({ path: join(dir, 'k.db') })
    source = new SyslogSource({
      type: 'syslog',
      name: 'sys',
      udp: { host: '127.0.0.1', port: 0 },
      tcp: { host: '127.0.0.1', port: 0 },
      tls: { host: '127.0.0.1', port: 0, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
      timeZone: 'UTC',
      flushMs: 20
    })
    pipeline = new Pipeline(store, { log: quiet })
    running = pipeline.run([source], stop.signal)
    for (let i = 0; i < 100 && source.bound.tls === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  afterAll(async () => {
    stop.abort()
    await running
    await store.close()
  })

  async function waitFor (n: number): Promise<KeaEvent[]> {
    for (let i = 0; i < 200 && (await store.count()) < n; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    return (await store.search({ size: 1000, sort: 'asc' })).events
  }

  it('receives logger over UDP and TCP (LF and octet-counted), RFC 3164 and 5424, and TLS', async () => {
    const logger = (...args: string[]): void => { execFileSync('logger', ['-n', '127.0.0.1', '-t', 'kea-dhcp4', '-p', 'local0.info', ...args, LEASE]) }
    logger('--udp', '-P', String(source.bound.udp), '--rfc3164')
    logger('--udp', '-P', String(source.bound.udp), '--rfc5424')
    logger('--tcp', '-P', String(source.bound.tcp), '--rfc3164')
    logger('--tcp', '-P', String(source.bound.tcp), '--rfc5424', '--octet-count')
    // openssl s_client as the TLS sender (asynchronous: the server runs in this process).
    const tls = spawn('openssl', ['s_client', '-quiet', '-connect', `127.0.0.1:${source.bound.tls}`], { stdio: ['pipe', 'ignore', 'ignore'] })
    tls.stdin.end(`<134>1 2026-11-24T09:23:04Z kea-tls kea-dhcp4 - - - ${LEASE}\n`)
    const events = await waitFor(5)
    tls.kill()
    expect(events).toHaveLength(5)
    for (const e of events) {
      expect(e).toMatchObject({
        event: { code: 'DHCP4_LEASE_ALLOC', action: 'allocate' },
        log: { level: 'info', logger: 'kea-dhcp4.leases', syslog: { facility: { code: 16 }, severity: { code: 6 }, appname: 'kea-dhcp4' } },
        client: { ip: '192.0.2.10', mac: '02-00-00-00-00-0A' },
        process: { thread: { id: 139952574804480 } }
      })
    }
    expect(events.map((e) => e.host?.name)).toContain('kea-tls')
    expect(source.counters.dropped).toBe(0)
  })

  it('keeps garbage as unmatched events instead of failing', async () => {
    const before = await store.count()
    execFileSync('logger', ['-n', '127.0.0.1', '--udp', '-P', String(source.bound.udp), 'not a kea line at all'])
    const events = await waitFor(before + 1)
    expect(events.some((e) => e.kea.parse.status === 'unmatched' && e.message.includes('not a kea line'))).toBe(true)
    // Counted once, by the pipeline (as for every source); the source counts only what it alone sees.
    expect(pipeline.sourceFlow('sys').unmatched).toBe(1)
    expect(pipeline.sourceFlow('sys').ok).toBe(5)
    expect(Object.keys(source.counters).sort()).toEqual(['dropped', 'errors', 'evictedConnections', 'received', 'rejectedConnections', 'spilled'])
  })
})

describe('syslog UDP spill queue', () => {
  async function scenario (spillMaxBytes: number, sent: number): Promise<{ stored: number, spilled: number, dropped: number, left: number, losses: Array<[number, number, number]> }> {
    const dir = mkdtempSync(join(tmpdir(), 'kt-spill-'))
    const dbPath = join(dir, 'k.db')
    const store = new SqliteStore({ path: dbPath, busyTimeoutMs: 5 })
    const { default: Database } = await import('better-sqlite3')
    const blocker = new Database(dbPath)
    blocker.prepare('BEGIN IMMEDIATE').run() // the store cannot write: the pipeline fills up
    const losses: Array<[number, number, number]> = []
    const source = new SyslogSource({ type: 'syslog', name: 'u', udp: { host: '127.0.0.1', port: 0 }, flushMs: 10, batchEvents: 20, maxPendingBatches: 2, spillMaxBytes, timeZone: 'UTC' }, join(dir, 'state'), (from, to, n) => losses.push([from, to, n]))
    const pipeline = new Pipeline(store, { log: quiet, queueBatches: 1 })
    const stop = new AbortController()
    const run = pipeline.run([source], stop.signal)
    for (let i = 0; i < 100 && source.bound.udp === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const { createSocket } = await import('node:dgram')
    const client = createSocket('udp4')
    for (let i = 0; i < sent; i++) {
      await new Promise<void>((resolve) => client.send(`<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.leases.1] DHCP4_X datagram ${i}`, source.bound.udp, '127.0.0.1', () => resolve()))
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    client.close()
    await new Promise((resolve) => setTimeout(resolve, 300))
    blocker.prepare('ROLLBACK').run()
    blocker.close()
    for (let i = 0; i < 300 && (await store.count()) + source.counters.dropped < sent; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const stored = await store.count()
    stop.abort()
    await run
    await store.close()
    const { SpillQueue } = await import('../../src/pipeline/spill.js')
    const q = new SpillQueue(join(dir, 'state', 'spill-u.db'), 1)
    const left = q.count()
    q.close()
    return { stored, spilled: source.counters.spilled, dropped: source.counters.dropped, left, losses }
  }

  it('keeps datagrams that arrive while the pipeline is full, and stores all of them afterwards', async () => {
    const r = await scenario(16 * 1024 * 1024, 400)
    expect(r.spilled).toBeGreaterThan(100)
    expect(r.dropped).toBe(0)
    expect(r.losses).toEqual([])
    expect(r.stored).toBe(400)
    expect(r.left).toBe(0)
  })

  it('counts exactly what it drops when even the spill queue is full', async () => {
    const r = await scenario(4096, 400)
    expect(r.dropped).toBeGreaterThan(0)
    expect(r.stored + r.dropped).toBe(400)
    // Every drop is reported as lost input (a collection gap for lease history), with its time range.
    expect(r.losses.reduce((n, l) => n + l[2], 0)).toBe(r.dropped)
    for (const [from, to] of r.losses) expect(from).toBeLessThanOrEqual(to)
  })
})
