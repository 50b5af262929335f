import { createSocket } from 'node:dgram'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { interpretMessage } from '../../src/parse/kea/message.js'
import { builtinRules } from '../../src/parse/kea/rules.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { derivationOf } from '../../src/parse/derivation.js'
import { RecordParser } from '../../src/parse/parser.js'
import { compilePattern } from '../../src/parse/pattern/compile.js'
import { resolvePattern } from '../../src/parse/patterns.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { parseSyslog } from '../../src/sources/syslog/header.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { decodeTimes, encodeTimes } from '../../src/store/sqlite/blocks/codec.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// What anyone who can send a syslog datagram could do to the process or the store (a hardening
// review, session 18): each case here stalled the event loop for seconds or broke the store.
// The inputs are sized so that the old code would outlast the test's timeout by far (a cost
// growing with the square or cube of the length), while the fixed code takes milliseconds.

const quiet = { info: () => {}, error: () => {} }
const LEASE = 'INFO  [kea-dhcp4.leases.139952574804480] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x7f74d74a: lease 192.0.2.10 has been allocated for 40 seconds'

function parseAll (pattern: string, lines: string[]): KeaEvent[] {
  const p = new RecordParser({ pattern, compiled: compilePattern(pattern), sourceId: 's', maxRecordBytes: 4 * 1024 * 1024 })
  const out: KeaEvent[] = []
  for (const [i, text] of lines.entries()) p.push({ text, offset: i, bytes: text.length }, (e) => out.push(e))
  p.flush((e) => out.push(e))
  return out
}

describe('event times no store can hold', () => {
  const now = Date.UTC(2026, 11, 7, 12)
  it('an RFC 5424 header time that is not RFC 5424\'s TIMESTAMP counts as none (the receive time stands for it)', () => {
    for (const t of ['+275760-09-13T00:00:00Z', '-271821-04-20T00:00:00Z', '10000-01-01T00:00:00Z', '2300-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '2026-12-07', '2026-12-07T12:00:00.1234567890Z', '2026-12-07T12:00:00']) {
      expect(parseSyslog(`<14>1 ${t} h kea-dhcp4 - - - x`, now, (w) => w), t).toMatchObject({ format: 'rfc5424', time: undefined, host: 'h', body: 'x' })
    }
    expect(parseSyslog('<14>1 2026-12-07T11:00:00.123456+01:00 h a - - - x', now, (w) => w)?.time).toBe(Date.UTC(2026, 11, 7, 10, 0, 0, 123))
    // As senders write it: nine fraction digits (Go's RFC3339Nano), lower-case t and z.
    expect(parseSyslog('<14>1 2026-12-07t11:00:00.123456789z h a - - - x', now, (w) => w)?.time).toBe(Date.UTC(2026, 11, 7, 11, 0, 0, 123))
    expect(parseSyslog('<14>1 2099-12-31T23:59:59Z h a - - - x', now, (w) => w)?.time).toBe(Date.UTC(2099, 11, 31, 23, 59, 59))
  })

  it('a log line whose time is past 2099 or before 1970 reads as no time: "unreadable timestamp", stored at its reading time, text kept', () => {
    const now = Date.now()
    const impossible = (pattern: string, line: string): void => {
      const [e] = parseAll(pattern, [line])
      expect(e?.kea.parse, `${pattern}: ${line}`).toMatchObject({ status: 'partial', reason: 'unreadable timestamp' })
      expect(Date.parse(e?.['@timestamp'] ?? ''), `${pattern}: ${line}`).toBeGreaterThanOrEqual(now - 1000)
      expect(e?.event.original).toBe(line)
    }
    // Each of the three ways a header's time is read: the regex path (epoch seconds, an offset),
    // the generated extractor (a layout of fixed widths), the scanner (kea-file).
    impossible('%d{%s} %-5p %m', '999999999999 INFO  X_Y far future')
    impossible('%d{%Y-%m-%dT%H:%M:%S%z} %-5p %m', '2099-12-31T23:59:59-1400 INFO  X_Y next century by its offset')
    impossible('%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c.%t] %m', '0000-01-01 00:00:00.000 INFO  [kea-dhcp4.leases.1] DHCP4_X year 0 is 1900')
    impossible(resolvePattern('kea-file'), '0000-01-01 00:00:00.000 INFO  [kea-dhcp4.leases/1.2] DHCP4_X year 0 is 1900')
    expect(parseAll('%d{%s} %-5p %m', ['1795511776 INFO  X_Y fine'])[0]?.['@timestamp']).toBe('2026-11-24T09:16:16.000Z')
  })

  it('a log line dated more than 26 hours ahead of the clock is stored at its reading time, marked, text kept; 25 hours ahead is believed', () => {
    const pattern = resolvePattern('kea-file')
    const at = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').slice(0, 23)
    const now = Date.now()
    const [far, near] = parseAll(pattern, [`${at(now + 27 * 3_600_000)} INFO  [kea-dhcp4.leases/1.2] ${LEASE.slice(LEASE.indexOf('DHCP4_'))}`, `${at(now + 25 * 3_600_000)} INFO  [kea-dhcp4.leases/1.2] DHCP4_X near`])
    expect(far?.kea.parse).toMatchObject({ status: 'partial', reason: 'timestamp more than 26 hours ahead of the clock' })
    expect(Date.parse(far?.['@timestamp'] ?? '')).toBeLessThanOrEqual(Date.now())
    expect(far?.client?.ip).toBe('192.0.2.10')
    expect(near?.kea.parse.status).toBe('ok')
    expect(Date.parse(near?.['@timestamp'] ?? '')).toBeGreaterThan(now + 24 * 3_600_000)
    // A file source's parser keeps raw records only for what it can make again: not this one
    // (read later, its time would be believed).
    const p = new RecordParser({ pattern, compiled: compilePattern(pattern), sourceId: 's', rederivable: true })
    const out: KeaEvent[] = []
    for (const [i, text] of [`${at(now + 27 * 3_600_000)} INFO  [kea-dhcp4.leases/1.2] DHCP4_X far`, `${at(now)} INFO  [kea-dhcp4.leases/1.2] DHCP4_X now`].entries()) p.push({ text, offset: i, bytes: text.length }, (e) => out.push(e))
    p.flush((e) => out.push(e))
    expect(out.map((e) => derivationOf(e) !== undefined)).toEqual([false, true])
    // Partial for a reason of its own, and dated ahead: both said.
    const [both] = parseAll('%D{%Y-%m-%d %H:%M:%S.%q} %-5p %m END', [`${at(now + 27 * 3_600_000)} INFO  X_Y no end`])
    expect(both?.kea.parse.reason).toBe('record does not match the whole pattern; timestamp more than 26 hours ahead of the clock')
  })

  it('block times read back exactly across the whole range, backwards too; 10-byte varints written before still read', () => {
    const max = Date.UTC(2099, 11, 31, 23, 59, 59, 999) * 1000 + 999
    const ts = [0, max, 1, max, 0, max - 1]
    expect(Array.from(decodeTimes(encodeTimes(ts), ts.length))).toEqual(ts)
    const old = [0, 2 ** 62, 2 ** 62 + 2 ** 40]
    expect(Array.from(decodeTimes(encodeTimes(old), 3))).toEqual(old)
  })

  describe('a forged datagram through a real socket into the SQLite store', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-hostile-'))
    let store: SqliteStore
    let source: SyslogSource
    const stop = new AbortController()
    let running: Promise<void>
    beforeAll(async () => {
      store = new SqliteStore({ path: join(dir, 'k.db') })
      source = new SyslogSource({ type: 'syslog', name: 'sys', udp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', flushMs: 20 })
      running = new Pipeline(store, { log: quiet }).run([source], stop.signal)
      await vi.waitFor(() => { expect(source.bound.udp).toBeDefined() })
    })
    afterAll(async () => {
      stop.abort()
      await running
      await store.close()
    })

    it('is stored at its receive time; the source\'s later writes and full scans go on', async () => {
      const client = createSocket('udp4')
      const send = async (text: string): Promise<void> => { await new Promise<void>((resolve) => client.send(text, source.bound.udp, '127.0.0.1', () => { resolve() })) }
      const before = Date.now()
      await send(`<14>1 +275760-09-13T00:00:00Z kea-a kea-dhcp4 - - - ${LEASE}`)
      await vi.waitFor(async () => { expect(await store.count()).toBe(1) })
      await send(`<14>1 2026-12-07T04:16:00Z kea-a kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.11')}`)
      await vi.waitFor(async () => { expect(await store.count()).toBe(2) })
      const { events } = await store.search({ size: 10, sort: 'asc', text: 'allocated' })
      expect(events.map((e) => e.client?.ip)).toEqual(['192.0.2.11', '192.0.2.10'])
      const forged = events[1] as KeaEvent
      expect(Date.parse(forged['@timestamp'])).toBeGreaterThanOrEqual(before - 1000)
      expect(Date.parse(forged['@timestamp'])).toBeLessThanOrEqual(Date.now())
      // A year no store writes exactly (2300), then later lines: all found in the last hour, in order.
      await send(`<14>1 2300-01-01T00:00:00Z kea-a kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.12')}`)
      await send(`<14>1 ${new Date().toISOString()} kea-a kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.13')}`)
      // Invalid UTF-8 in the header only: the body is text, no raw bytes kept.
      await new Promise<void>((resolve) => client.send(Buffer.concat([Buffer.from('<14>1 - kea'), Buffer.from([0xff]), Buffer.from(` kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.14')}`)]), source.bound.udp, '127.0.0.1', () => { resolve() }))
      await vi.waitFor(async () => { expect(await store.count()).toBe(5) })
      const recent = await store.search({ size: 10, sort: 'asc', from: Date.now() - 3_600_000, to: Date.now() + 1000 })
      expect(recent.events.map((e) => e.client?.ip).sort()).toEqual(['192.0.2.10', '192.0.2.12', '192.0.2.13', '192.0.2.14'])
      expect(recent.events.find((e) => e.client?.ip === '192.0.2.14')?.kea.parse.raw_base64).toBeUndefined()
      client.close()
    })

    it('a header time far ahead of the clock is not believed: its host\'s lease coverage does not reach the future', async () => {
      const client = createSocket('udp4')
      const send = async (text: string): Promise<void> => { await new Promise<void>((resolve) => client.send(text, source.bound.udp, '127.0.0.1', () => { resolve() })) }
      const before = Date.now()
      // A year a store holds exactly, but no time Kea wrote it at: before, the batch's coverage
      // span then reached 2099, so `lease at` for any later time said the logs covered it.
      await send(`<14>1 2099-06-01T00:00:00Z kea-b kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.20')}`)
      await send(`<14>1 ${new Date(before + 20 * 3_600_000).toISOString()} kea-b kea-dhcp4 - - - ${LEASE.replace('192.0.2.10', '192.0.2.21')}`)
      await vi.waitFor(async () => { expect((await store.search({ size: 10, text: 'allocated', filters: { host: ['kea-b'] } })).events).toHaveLength(2) })
      const { events } = await store.search({ size: 10, text: 'allocated', filters: { host: ['kea-b'] } })
      const forged = events.find((e) => e.client?.ip === '192.0.2.20') as KeaEvent
      // As any header time the store cannot believe: the receive time stands for it, and says so.
      expect(Date.parse(forged['@timestamp'])).toBeLessThanOrEqual(Date.now())
      expect(forged.event.ingested).toBe(forged['@timestamp'])
      // 20 hours ahead is a clock or a zone off, not a forgery: believed.
      expect(events.find((e) => e.client?.ip === '192.0.2.21')?.['@timestamp']).toBe(new Date(before + 20 * 3_600_000).toISOString())
      await vi.waitFor(async () => { expect(await store.leases.coverage('kea-b')).toBeDefined() })
      const covered = await store.leases.coverage('kea-b')
      expect(covered?.to).toBeGreaterThan(before + 19 * 3_600_000)
      expect(covered?.to).toBeLessThanOrEqual(before + 27 * 3_600_000)
      client.close()
    })
  })
})

describe('input that cost a power of its length', () => {
  it('the kea-syslog header on a line of "a." (1 MB) reads as no header at once', () => {
    const line = 'INFO  [' + 'a.'.repeat(500_000)
    const [e] = parseAll(resolvePattern('kea-syslog'), [line])
    expect(e?.kea.parse.status).toBe('unmatched')
    expect(e?.message.length).toBe(line.length)
    // Kea's own lines still read, thread id and all.
    expect(parseAll(resolvePattern('kea-syslog'), [LEASE])[0]).toMatchObject({ log: { logger: 'kea-dhcp4.leases' }, process: { thread: { id: 139952574804480 } }, kea: { parse: { status: 'ok' } } })
  })

  it('a rule form with several free-text parts is not tried on text longer than Kea writes (64 KB crafted: 8 s before)', () => {
    const rules = builtinRules()
    const label = '[hwtype=1 02:00:00:00:00:0a], cid=[no info]'
    const head = `DHCP4_DECLINE_LEASE_MISMATCH Received DHCPDECLINE for addr 192.0.2.1 from client ${label}, but the data doesn't match: received hwaddr: `
    const text = head + ', lease hwaddr: '.repeat(2000) + ', received client-id: '.repeat(1500)
    const e = parseAll(resolvePattern('debian-systemd'), ['INFO  x'])[0] as KeaEvent
    expect(interpretMessage(text, e, rules).formMismatch).toBe(true)
    // The message as Kea writes it still matches its form.
    const real = parseAll(resolvePattern('debian-systemd'), ['INFO  x'])[0] as KeaEvent
    const r = interpretMessage(`DHCP4_DECLINE_LEASE_MISMATCH Received DHCPDECLINE for addr 192.0.2.1 from client ${label}, but the data doesn't match: received hwaddr: 02:00:00:00:00:0b, lease hwaddr: 02:00:00:00:00:0a, received client-id: no info, lease client-id: no info`, real, rules)
    expect(r.formMismatch).toBe(false)
    expect(real.event.action).toBe('decline-fail')
    // A lease-cmds failure with a user context of several KB is Kea's and still reads.
    const cmd = parseAll(resolvePattern('debian-systemd'), ['INFO  x'])[0] as KeaEvent
    const context = JSON.stringify({ 'user-context': { note: 'x'.repeat(5000) } })
    expect(interpretMessage(`LEASE_CMDS_ADD4_FAILED lease4-add command failed (parameters: { "ip-address": "192.0.2.1", ${context.slice(1, -1)} }, reason: lease already exists)`, cmd, rules).formMismatch).toBe(false)
    expect(cmd.event.action).toBe('lease-cmd-fail')
  })

  it('a datagram of LFs before one letter, and one of 32,000 short lines: read at once, one event each, every line kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-hostile-lines-'))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const source = new SyslogSource({ type: 'syslog', name: 'sys', udp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', flushMs: 20 })
    const stop = new AbortController()
    const pipeline = new Pipeline(store, { log: quiet })
    const running = pipeline.run([source], stop.signal)
    try {
      await vi.waitFor(() => { expect(source.bound.udp).toBeDefined() })
      const client = createSocket('udp4')
      const send = async (text: string): Promise<void> => { await new Promise<void>((resolve) => client.send(text, source.bound.udp, '127.0.0.1', () => { resolve() })) }
      // The old trim (/\n+$/) tried each run of LFs to its end: 3.7 s for 65 KB, hours for this.
      await send('<14>' + '\n'.repeat(60_000) + 'x')
      await send('<14>' + 'a\n'.repeat(32_000))
      // Each message one event: before, one per line (all with the message's id: the store kept one).
      await send(`<14>Dec  7 04:16:00 kea-a kea-dhcp4: ${LEASE}\nsecond line\n\n${LEASE}\n`)
      await vi.waitFor(async () => { expect(await store.count()).toBe(3) }, { timeout: 20_000, interval: 50 })
      client.close()
      expect(pipeline.sourceFlow('sys').unmatched).toBe(2)
      const { events } = await store.search({ size: 10, sort: 'asc' })
      const text = events.map((e) => e.message)
      expect(text).toContain('\n'.repeat(60_000) + 'x')
      expect(text).toContain(Array(32_000).fill('a').join('\n'))
      const lease = events.find((e) => e.event.code === 'DHCP4_LEASE_ALLOC')
      expect(lease?.message).toBe(`${LEASE.slice(LEASE.indexOf('DHCP4_'))}\nsecond line\n\n${LEASE}`)
    } finally {
      stop.abort()
      await running
      await store.close()
    }
  }, 60_000)
})
