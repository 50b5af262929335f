import { describe, expect, it } from 'vitest'
import { derivationOf } from '../../src/parse/derivation.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { builtinRules } from '../../src/parse/kea/rules.js'
import { Rederiver } from '../../src/parse/rederive.js'
import { isoToMicros, microsToIso } from '../../src/store/time.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

// The block store keeps only the raw record of an event its parser marked re-derivable, and
// makes the document again when it is read: the same bytes, or the store would answer otherwise.

const STDOUT_PATTERN = '%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i.%t] %m\n'

/** Each marked event made again from its raw record, offset and stored time. */
function rederived (events: readonly KeaEvent[]): { same: number, marked: number, differ: string[] } {
  const derivers = new Map<string, Rederiver>()
  let same = 0
  let marked = 0
  const differ: string[] = []
  for (const e of events) {
    const d = derivationOf(e)
    if (d === undefined) continue
    marked++
    let r = derivers.get(d.key)
    if (r === undefined) { r = new Rederiver(d.spec); derivers.set(d.key, r) }
    const again = r.derive(e.event.original, e.log.offset as number, () => isoToMicros(e['@timestamp']) / 1000)
    if (JSON.stringify(again) === JSON.stringify(e)) same++
    else differ.push(`${JSON.stringify(e)}\n${JSON.stringify(again)}`)
  }
  return { same, marked, differ }
}

describe('re-derivation of documents from raw records', () => {
  it('makes every marked event of the real captures again, byte for byte (multi-line DEBUG records, both families, other patterns)', async () => {
    for (const [file, pattern] of [
      ['kea-2.2.0-dhcp4-INFO-full.log', undefined],
      ['kea-2.2.0-dhcp6-INFO-full.log', undefined],
      ['captured/kea-dhcp4-DEBUG-file.log.gz', undefined],
      ['captured/kea-dhcp6-DEBUG-file.log.gz', undefined],
      ['kea-2.2.0-dhcp4-DEBUG99-full.log.gz', undefined],
      ['captured/kea-dhcp4-INFO-stdout.log', STDOUT_PATTERN]
    ] as const) {
      const { events } = await parseBuffer(readFixture(file), { host: 'kea-a', path: file, rederivable: true, ...(pattern === undefined ? {} : { pattern }) })
      const r = rederived(events)
      expect(r.differ.slice(0, 2), file).toEqual([])
      expect(r.marked, file).toBe(events.length)
      expect(r.same, file).toBeGreaterThan(0)
    }
  })

  it('gives a line without a header its stored time, and marks nothing whose bytes the raw text lacks', async () => {
    const header = '2024-05-01 10:00:00.123 INFO  [kea-dhcp4.leases/99.1] DHCP4_LEASE_ALLOC [hwtype=1 00:11:22:33:44:55], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 3600 seconds\n'
    const input = Buffer.concat([
      Buffer.from('a stray line before any header\n'),
      Buffer.from(header),
      Buffer.from('not valid UTF-8: '), Buffer.from([0xff, 0xfe]), Buffer.from('\n'),
      Buffer.from(header.replace('10:00:00', '10:00:01')),
      Buffer.from(`${'x'.repeat(300)}\n`),
      Buffer.from(header.replace('10:00:00', '10:00:02'))
    ])
    const { events } = await parseBuffer(input, { host: 'kea-a', path: 'k.log', rederivable: true, maxLineBytes: 200 })
    expect(events.map((e) => [e.kea.parse.status, derivationOf(e) !== undefined])).toEqual([
      ['unmatched', true], // no header: made again with the time it was read (stored)
      ['partial', false], // its continuation holds invalid UTF-8 (raw_base64)
      ['partial', false], // its continuation was cut at maxLineBytes
      ['ok', true]
    ])
    const r = rederived(events)
    expect(r.differ).toEqual([])
    expect(r.same).toBe(r.marked)
  })

  it('is not marked without rederivable, nor with custom rules', async () => {
    const { events } = await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { host: 'kea-a' })
    expect(events.some((e) => derivationOf(e) !== undefined)).toBe(false)
    const custom = await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { host: 'kea-a', rederivable: true, rules: builtinRules() })
    expect(custom.events.some((e) => derivationOf(e) !== undefined)).toBe(false)
  })

  it('makes the message and time alone when asked (a full-text test), the same as the whole event\'s', async () => {
    const { events } = await parseBuffer(readFixture('captured/kea-dhcp4-DEBUG-file.log.gz'), { host: 'kea-a', path: 'k.log', rederivable: true })
    const d = derivationOf(events[0] as KeaEvent)
    if (d === undefined) throw new Error('not marked')
    const text = new Rederiver(d.spec, true)
    for (const e of events) {
      const m = text.derive(e.event.original, e.log.offset as number, () => isoToMicros(e['@timestamp']) / 1000)
      expect([m.message, m['@timestamp']]).toEqual([e.message, e['@timestamp']])
      expect(m.event.code).toBeUndefined()
    }
  })

  it('an unparsed stand-in keeps a stored time to the microsecond', () => {
    for (const iso of ['2026-11-24T09:16:10.304Z', '2026-11-24T09:16:10.304123Z', '2026-11-24T09:16:10.000001Z', '1970-01-01T00:00:00.000Z']) {
      expect(microsToIso(isoToMicros(iso))).toBe(iso)
    }
  })
})
