import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { IsoFormatter } from '../../../src/parse/time/iso.js'

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
