import { describe, expect, it } from 'vitest'
import { memfileIntervals, parseMemfile } from '../../src/leases/memfile.js'
import { readFixture } from '../helpers/fixtures.js'

// Kea's own memfile lease files captured with the logs (test/fixtures/kea/captured*/: 2.2, 2.6, 3.0).

describe('memfile lease files', () => {
  it('reads the captured v4 file: renewals merge, releases and reclamations end, clients kept apart', () => {
    const rows = parseMemfile(readFixture('captured/kea-dhcp4-INFO-leases.csv').toString('utf8'))
    expect(rows.length).toBe(259)
    const ivs = memfileIntervals(rows, 'kea')
    expect(ivs.every((iv) => iv.origin === 'kea-state' && iv.type === 'V4' && iv.start !== null)).toBe(true)
    // The admin-added lease: added for 1a:…:1f, updated to 1a:…:20 (another client), deleted.
    const admin = ivs.filter((iv) => iv.lease === '192.0.2.201')
    expect(admin[0]).toMatchObject({ hwaddr: '1a:1b:1c:1d:1e:1f', end_reason: 'superseded', hostname: 'admin-added.example.org' })
    expect(admin[1]).toMatchObject({ hwaddr: '1a:1b:1c:1d:1e:20', end_reason: 'release' })
    expect(new Set(ivs.map((iv) => iv.end_reason))).toEqual(new Set(['superseded', 'release', 'reclaim', 'decline']))
    expect(new Set(ivs.map((iv) => iv.id)).size).toBe(ivs.length)
  })

  it('reads the captured v6 file: addresses and prefixes, DUID + IAID, DUID-LL link-layer address', () => {
    const rows = parseMemfile(readFixture('captured/kea-dhcp6-INFO-leases.csv').toString('utf8'))
    const ivs = memfileIntervals(rows, 'kea')
    expect(new Set(ivs.map((iv) => iv.type))).toEqual(new Set(['IA_NA', 'IA_PD']))
    const pd = ivs.find((iv) => iv.type === 'IA_PD') as (typeof ivs)[number]
    expect(pd.lease).toMatch(/\/56$/)
    expect(pd).toMatchObject({ duid: '00:03:00:01:02:00:00:00:06:0a', duid_ll: '02:00:00:00:06:0a', iaid: 110 })
  })

  it('gives the same intervals (and ids) on a second read: seeding is idempotent', () => {
    const text = readFixture('captured/kea-dhcp6-INFO-leases.csv').toString('utf8')
    expect(memfileIntervals(parseMemfile(text), 'kea')).toEqual(memfileIntervals(parseMemfile(text), 'kea'))
  })

  for (const version of ['2.6', '3.0']) {
    it(`reads Kea ${version}'s files (a pool_id column at the end): the same kinds of intervals`, () => {
      const v4 = readFixture(`captured-${version}/kea-dhcp4-INFO-leases.csv`).toString('utf8')
      const v6 = readFixture(`captured-${version}/kea-dhcp6-INFO-leases.csv`).toString('utf8')
      expect(v4.slice(0, v4.indexOf('\n'))).toMatch(/,pool_id$/)
      const ivs4 = memfileIntervals(parseMemfile(v4), 'kea')
      const ivs6 = memfileIntervals(parseMemfile(v6), 'kea')
      expect(ivs4.length).toBeGreaterThan(50)
      expect(ivs4.every((iv) => iv.type === 'V4' && iv.start !== null && iv.hwaddr !== undefined)).toBe(true)
      expect(ivs4.filter((iv) => iv.lease === '192.0.2.201').map((iv) => [iv.hwaddr, iv.end_reason])).toEqual([['1a:1b:1c:1d:1e:1f', 'superseded'], ['1a:1b:1c:1d:1e:20', 'release'], ['1a:1b:1c:1d:1e:1f', expect.any(String)]])
      expect(new Set(ivs6.map((iv) => iv.type))).toEqual(new Set(['IA_NA', 'IA_PD']))
      expect(ivs6.every((iv) => iv.duid !== undefined && iv.iaid !== undefined)).toBe(true)
    })
  }

  it('refuses a file that is not a lease file', () => {
    expect(() => parseMemfile('hello,world\n1,2\n')).toThrow(/not a Kea memfile lease file/)
  })
})
