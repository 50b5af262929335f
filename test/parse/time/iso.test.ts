import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { IsoFormatter, isoMicros, isoMillis } from '../../../src/parse/time/iso.js'

describe('IsoFormatter', () => {
  it('formats exactly like Date#toISOString, in any order of instants', () => {
    const f = new IsoFormatter()
    fc.assert(fc.property(fc.array(fc.integer({ min: -62_000_000_000_000, max: 250_000_000_000_000 }), { maxLength: 50 }), (times) => {
      for (const t of times) expect(f.format(t)).toBe(new Date(t).toISOString())
    }), { numRuns: 200 })
  })

  it('appends microseconds', () => {
    expect(new IsoFormatter().format(Date.UTC(2026, 10, 24, 9, 22, 41, 77), 103)).toBe('2026-11-24T09:22:41.077103Z')
    expect(new IsoFormatter().format(Date.UTC(2026, 10, 24, 9, 22, 41, 77), 3)).toBe('2026-11-24T09:22:41.077003Z')
  })
})

/** What isoMicros replaced: Date.parse for the milliseconds, the 4th-6th fraction digits as microseconds. */
function reference (iso: string): number {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return Number.NaN
  const frac = /\.(\d+)/.exec(iso)?.[1] ?? ''
  return ms * 1000 + (frac.length > 3 ? Number(frac.slice(3, 6).padEnd(3, '0')) : 0)
}

describe('isoMicros', () => {
  it('reads what Date.parse reads, for any instant and fraction length, in any order', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: -62_000_000_000_000, max: 250_000_000_000_000 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 999_999_999 })), { maxLength: 30 }), (cases) => {
      for (const [t, digits, frac] of cases) {
        const base = new Date(Math.floor(t / 1000) * 1000).toISOString().slice(0, -5)
        const iso = digits === 0 ? `${base}Z` : `${base}.${String(frac).padStart(9, '0').slice(0, digits)}Z`
        expect(isoMicros(iso)).toBe(reference(iso))
        expect(isoMillis(iso)).toBe(Date.parse(iso))
      }
    }), { numRuns: 300 })
  })

  it('is NaN for what is not a timestamp, whatever second it read before, and reads other forms as Date.parse does', () => {
    expect(isoMicros('2026-11-24T09:22:41.077103Z')).toBe(Date.UTC(2026, 10, 24, 9, 22, 41, 77) * 1000 + 103)
    for (const bad of ['2026-11-24T09:22:41.Z', '2026-11-24T09:22:41.07a103Z', '2026-11-24T09:22:41.077103', '2026-13-24T09:22:41.000Z', '2026-11-24 09:22:41.000Z', 'not a time at all!!Z', '']) {
      expect(isoMicros(bad), bad).toBe(reference(bad))
    }
    expect(Number.isNaN(isoMicros('2026-11-24T09:22:41.07a103Z'))).toBe(true)
    // The same second as the last one read, then an offset form: Date.parse's answer.
    isoMicros('2026-11-24T09:22:41.000Z')
    expect(isoMicros('2026-11-24T09:22:41.000+01:00')).toBe(Date.UTC(2026, 10, 24, 8, 22, 41) * 1000)
    expect(isoMicros('2026-11-24T09:22:41.1234567891Z')).toBe(reference('2026-11-24T09:22:41.1234567891Z'))
    // Hour 24: Date.parse reads the next midnight, and nothing with a fraction.
    for (const h24 of ['2023-02-28T24:00:00Z', '2023-02-28T24:00:00.5Z', '2023-02-29T24:00:00.5Z']) expect(isoMillis(h24), h24).toBe(Date.parse(h24))
    expect(Number.isNaN(isoMillis('\u0000' + 'x'.repeat(18) + '.5Z'))).toBe(true)
  })
})
