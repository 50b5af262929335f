import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { coverageSpans, observe, sequenceOf } from '../../src/leases/observe.js'
import { LeaseDomains } from '../../src/leases/domains.js'
import type { LeaseObservation } from '../../src/leases/types.js'
import { observeWipe, SubnetMap } from '../../src/leases/wipes.js'
import type { KeaEvent } from '../../src/parse/event.js'

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

describe('lease domains', () => {
  const domains = new LeaseDomains([{ name: 'ha-pair', servers: ['kea-a', 'kea-b'] }])
  const event = (host: string, action: string, extra: Partial<KeaEvent['kea']> = {}): KeaEvent => ({
    '@timestamp': '2026-11-24T10:00:00.000Z', message: '', event: { id: `${host}-10`, original: '', dataset: 'kea.dhcp4', module: 'kea', kind: 'event', action: action as NonNullable<KeaEvent['event']['action']> },
    host: { name: host }, kea: { source_id: host, parse: { status: 'ok' }, lease: { address: '192.0.2.50', lifetime: 40 }, hwaddr: '02:00:00:00:00:0a', ...extra }
  }) as KeaEvent

  it('a server in a domain keeps its leases, wipes, coverage and subnets under the domain; others under their own name', () => {
    expect(observe(event('kea-b', 'allocate'), domains)).toMatchObject({ scope: 'ha-pair', key: 'ha-pair|V4|192.0.2.50' })
    expect(observe(event('kea-c', 'allocate'), domains)).toMatchObject({ scope: 'kea-c', key: 'kea-c|V4|192.0.2.50' })
    expect(observe(event('kea-b', 'allocate'))).toMatchObject({ scope: 'kea-b' })
    expect(observeWipe(event('kea-a', 'lease-wipe', { subnet_id: 1 }), domains)).toMatchObject({ scope: 'ha-pair', subnet_id: 1 })
    expect([...coverageSpans([event('kea-a', 'allocate'), event('kea-b', 'allocate'), event('kea-c', 'allocate')], domains).keys()]).toEqual(['ha-pair', 'kea-c'])
    const subnets = new SubnetMap([{ server: 'kea-a', id: 1, prefix: '192.0.2.0/24' }], domains)
    const k = observe(event('kea-b', 'allocate'), domains) as LeaseObservation
    expect(subnets.idsHolding(k)).toEqual([1])
    expect(domains.hostsOf('ha-pair')).toEqual(['kea-a', 'kea-b'])
    expect(domains.hostsOf('kea-c')).toEqual(['kea-c'])
  })
})
