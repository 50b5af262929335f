import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { sequenceOf } from '../../src/leases/observe.js'

/** What sequenceOf replaced: a regex over the text after the last dash. */
function reference (eventId: string): string {
  const dash = eventId.lastIndexOf('-')
  const off = dash < 0 ? '' : eventId.slice(dash + 1)
  if (dash < 0 || !/^[0-9a-f]{1,13}$/.test(off)) return eventId
  return `${eventId.slice(0, dash)}-${off.padStart(13, '0')}`
}

describe('sequenceOf', () => {
  it('pads hex offsets to 13 digits and leaves every other id as it is', () => {
    expect(sequenceOf('2ed252dd1a26bf0b9725-ffff')).toBe('2ed252dd1a26bf0b9725-000000000ffff')
    for (const id of ['nodash', 'a-', 'a-FF', 'a-12345678901234', 'a-1234567890123', 'a-b-0', '-0', 'a-g1']) expect(sequenceOf(id), id).toBe(reference(id))
    fc.assert(fc.property(fc.string({ maxLength: 8 }), fc.stringMatching(/^[0-9a-gA-F-]{0,15}$/), (head, tail) => {
      expect(sequenceOf(`${head}-${tail}`)).toBe(reference(`${head}-${tail}`))
    }), { numRuns: 2000 })
  })

  it('keeps (source, offset) order', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 48 }), fc.integer({ min: 0, max: 2 ** 48 }), (a, b) => {
      const sa = sequenceOf(`src-${a.toString(16)}`)
      const sb = sequenceOf(`src-${b.toString(16)}`)
      expect(Math.sign(sa < sb ? -1 : sa > sb ? 1 : 0)).toBe(Math.sign(a - b))
    }))
  })
})
