import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { keaEventSchema, type KeaEvent } from '../../src/parse/event.js'
import { LineSplitter } from '../../src/parse/lines.js'
import { RecordParser } from '../../src/parse/parser.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

const FILE_PATTERN = '%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i.%t] %m\n'
const LINE = '2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/15928.140567963111936] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x7f74d74a: lease 192.0.2.10 has been allocated for 40 seconds'

/** Every input byte must come back out of the events: originals (or raw bytes) joined by LF. */
function reassemble (events: KeaEvent[]): Buffer {
  const parts: Buffer[] = []
  events.forEach((e, i) => {
    if (i > 0) parts.push(Buffer.from('\n'))
    parts.push(e.kea.parse.raw_base64 !== undefined ? Buffer.from(e.kea.parse.raw_base64, 'base64') : Buffer.from(e.event.original, 'utf8'))
  })
  return Buffer.concat(parts)
}

describe('RecordParser', () => {
  it('joins continuation lines to the record that owns them (DEBUG lease dump)', async () => {
    const text = readFixture('kea-2.2.0-dhcp6-DEBUG99-full.log.gz').toString()
    const { events, stats } = await parseBuffer(text)
    expect(stats.status.unmatched).toBe(0)
    const data = events.find((e) => e.event.code === 'DHCP6_LEASE_DATA')!
    expect(data.event.original.split('\n').length).toBeGreaterThan(5)
    expect(data.message).toContain('\nState:')
    expect(data.kea).toMatchObject({ duid: expect.stringMatching(/^00:03:00:01:/), iaid: expect.any(Number) })
    expect(data.kea.lease?.lifetime).toBeGreaterThan(0)
    // Records come out in input order and every line is accounted for.
    expect(stats.lines).toBe(text.split('\n').length - 1)
    expect(reassemble(events).toString() + '\n').toBe(text)
  })

  it('gives every event valid schema fields and stable ids', async () => {
    const buf = readFixture('kea-2.2.0-dhcp4-INFO-full.log')
    const a = await parseBuffer(buf)
    const b = await parseBuffer(buf)
    for (const e of a.events) keaEventSchema.parse(e)
    expect(a.events.map((e) => e.event.id)).toEqual(b.events.map((e) => e.event.id))
    expect(new Set(a.events.map((e) => e.event.id)).size).toBe(a.events.length)
  })

  it('keeps ids when the file is renamed or gzip\'d: identity is content, not name', async () => {
    const buf = readFixture('kea-2.2.0-dhcp4-INFO-full.log')
    const a = await parseBuffer(buf, { path: 'kea-dhcp4.log' })
    const b = await parseBuffer(buf, { path: 'kea-dhcp4.log.1' })
    expect(a.events.map((e) => e.event.id)).toEqual(b.events.map((e) => e.event.id))
  })

  it('keeps a line before any header as its own unmatched event', async () => {
    const { events, stats } = await parseBuffer(`garbage first\n${LINE}\n`)
    expect(events.map((e) => e.kea.parse.status)).toEqual(['unmatched', 'ok'])
    expect(events[0]!.event.original).toBe('garbage first')
    expect(stats.status.unmatched).toBe(1)
  })

  it('marks every line unmatched when the pattern does not fit, losing none', async () => {
    const text = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString()
    const { events, stats } = await parseBuffer(text, { pattern: '%-5p [%c.%t] %m\n' })
    expect(stats.status.unmatched).toBe(events.length)
    expect(events.length).toBe(text.split('\n').length - 1)
  })

  it('keeps invalid UTF-8 and NUL bytes exactly', async () => {
    const bad = Buffer.concat([Buffer.from(LINE.replace('40 seconds', '40 sec')), Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.from('\n')])
    const { events, stats } = await parseBuffer(bad)
    expect(events).toHaveLength(1)
    expect(stats.invalidUtf8).toBe(1)
    expect(Buffer.from(events[0]!.kea.parse.raw_base64!, 'base64')).toEqual(bad.subarray(0, bad.length - 1))
    expect(events[0]!.event.original).toContain('\u0000A')
  })

  it('cuts a line over the limit, marks and counts it, and carries on', async () => {
    const huge = LINE + ' ' + 'x'.repeat(3 * 1024 * 1024)
    const { events, stats } = await parseBuffer(`${huge}\n${LINE}\n`)
    expect(events).toHaveLength(2)
    expect(stats.truncated).toBe(1)
    expect(events[0]!.kea.parse.truncated).toBe(true)
    expect(events[0]!.event.original.length).toBeLessThanOrEqual(1024 * 1024)
    expect(events[1]!.log.offset).toBe(Buffer.byteLength(huge) + 1)
    expect(events[1]!.kea.parse.status).toBe('ok')
  })

  it('emits a last line that has no newline', async () => {
    const { events } = await parseBuffer(`${LINE}\n${LINE}`)
    expect(events).toHaveLength(2)
    expect(events[1]!.kea.parse.status).toBe('ok')
  })

  it('keeps a cut-off last line with the record it continues', async () => {
    const { events } = await parseBuffer(`${LINE}\n${LINE.slice(0, 60)}`)
    expect(events).toHaveLength(1)
    expect(events[0]!.event.original).toBe(`${LINE}\n${LINE.slice(0, 60)}`)
  })

  it('marks a garbled date as partial and still reads the rest', async () => {
    const { events } = await parseBuffer(LINE.replace('2026-11-24 09:16', '2026-19-24 29:16') + '\n')
    expect(events[0]!.kea.parse).toMatchObject({ status: 'partial', reason: 'unreadable timestamp' })
    expect(events[0]!.event.code).toBe('DHCP4_LEASE_ALLOC')
  })

  it('accepts unknown message IDs with generic extraction', async () => {
    const { events } = await parseBuffer(LINE.replace('DHCP4_LEASE_ALLOC', 'DHCP4_FUTURE_THING') + '\n')
    expect(events[0]!.kea.parse.status).toBe('ok')
    expect(events[0]!.event.code).toBe('DHCP4_FUTURE_THING')
    expect(events[0]!.event.action).toBeUndefined()
    expect(events[0]!.kea.hwaddr).toBe('02:00:00:00:00:0a')
    expect(events[0]!.related?.ip).toEqual(['192.0.2.10'])
  })

  it('marks a known ID whose text fits no form as partial', async () => {
    const { events } = await parseBuffer(LINE.replace('has been allocated for', 'was given for') + '\n')
    expect(events[0]!.kea.parse).toMatchObject({ status: 'partial' })
    expect(events[0]!.event.action).toBeUndefined()
  })

  it('closes a record at the line limit and keeps the overflow', async () => {
    const p = new RecordParser({ pattern: FILE_PATTERN, sourceId: 's', maxRecordLines: 3, timeZone: 'UTC' })
    const out: KeaEvent[] = []
    const split = new LineSplitter()
    const dump = LINE.replace('DHCP4_LEASE_ALLOC', 'DHCP4_QUERY_DATA')
    split.push(Buffer.from(`${dump}\na\nb\nc\nd\n`), (l) => p.push(l, (e) => out.push(e)))
    p.flush((e) => out.push(e))
    expect(out.map((e) => e.kea.parse.status)).toEqual(['ok', 'unmatched', 'unmatched'])
    expect(out[0]!.event.original).toBe(`${dump}\na\nb`)
  })

  it('resolves local-time headers in the given zone and records it', async () => {
    const { events } = await parseBuffer(LINE + '\n', { timeZone: 'Europe/Berlin' })
    expect(events[0]!['@timestamp']).toBe('2026-11-24T08:16:16.851Z')
    expect(events[0]!.event.timezone).toBe('Europe/Berlin')
  })

  it('never crashes and never loses bytes on random input and mutated real lines', async () => {
    const real = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString().split('\n').slice(0, 50)
    const mutated = fc.tuple(fc.constantFrom(...real), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }))
      .map(([line, at, bytes]) => {
        const b = Buffer.from(line)
        const pos = at % (b.length + 1)
        return Buffer.concat([b.subarray(0, pos), Buffer.from(bytes), b.subarray(pos)])
      })
    const input = fc.array(fc.oneof(mutated, fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), fc.constantFrom(...real).map((s) => Buffer.from(s))), { maxLength: 30 })
      .map((parts) => Buffer.concat(parts.flatMap((p) => [p, Buffer.from('\n')])))
    await fc.assert(fc.asyncProperty(input, async (buf) => {
      const { events, stats } = await parseBuffer(buf)
      expect(stats.lines).toBe(buf.length === 0 ? 0 : buf.toString('latin1').split('\n').length - 1)
      if (buf.length > 0) expect(reassemble(events)).toEqual(buf.subarray(0, buf.length - 1))
      for (const e of events) keaEventSchema.parse(e)
    }), { numRuns: 300 })
  })
})
