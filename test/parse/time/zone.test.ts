import { describe, expect, it } from 'vitest'
import { LocalTimeResolver } from '../../../src/parse/time/zone.js'

const wall = (iso: string): number => Date.parse(iso + 'Z')

describe('LocalTimeResolver', () => {
  it('converts ordinary local times', () => {
    const r = new LocalTimeResolver('Europe/Berlin')
    expect(r.resolve(wall('2026-07-01T12:00:00'))).toBe(Date.parse('2026-07-01T10:00:00Z'))
    expect(r.resolve(wall('2026-12-01T12:00:00'))).toBe(Date.parse('2026-12-01T11:00:00Z'))
  })

  it('moves a time in the spring-forward gap forward by the gap', () => {
    const r = new LocalTimeResolver('Europe/Berlin')
    // 02:30 does not exist on 2026-03-29 in Berlin; 02:30 CET (+1) = 01:30Z = 03:30 CEST.
    expect(r.resolve(wall('2026-03-29T02:30:00'))).toBe(Date.parse('2026-03-29T01:30:00Z'))
  })

  it('resolves the repeated hour by the stream\'s own clock', () => {
    const r = new LocalTimeResolver('America/New_York')
    // 2026-11-01: 01:00–01:59 happens twice (EDT −4, then EST −5).
    expect(r.resolve(wall('2026-11-01T00:59:00'))).toBe(Date.parse('2026-11-01T04:59:00Z'))
    expect(r.resolve(wall('2026-11-01T01:10:00'))).toBe(Date.parse('2026-11-01T05:10:00Z')) // first pass, EDT
    expect(r.resolve(wall('2026-11-01T01:59:00'))).toBe(Date.parse('2026-11-01T05:59:00Z'))
    // The clock stepped back: from here on the later instant (EST).
    expect(r.resolve(wall('2026-11-01T01:05:00'))).toBe(Date.parse('2026-11-01T06:05:00Z'))
    expect(r.resolve(wall('2026-11-01T01:30:00'))).toBe(Date.parse('2026-11-01T06:30:00Z'))
    expect(r.resolve(wall('2026-11-01T02:00:00'))).toBe(Date.parse('2026-11-01T07:00:00Z'))
  })

  it('takes the earlier instant for an isolated ambiguous time', () => {
    const r = new LocalTimeResolver('America/New_York')
    expect(r.resolve(wall('2026-11-01T01:30:00'))).toBe(Date.parse('2026-11-01T05:30:00Z'))
  })

  it('tolerates small out-of-order steps inside the fold (multi-threaded Kea)', () => {
    const r = new LocalTimeResolver('America/New_York')
    r.resolve(wall('2026-11-01T01:20:00'))
    expect(r.resolve(wall('2026-11-01T01:19:59.500'))).toBe(Date.parse('2026-11-01T05:19:59.500Z'))
  })

  it('rejects an unknown zone with a code', () => {
    expect(() => new LocalTimeResolver('Mars/Olympus')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_TIMEZONE_INVALID' }))
  })
})
