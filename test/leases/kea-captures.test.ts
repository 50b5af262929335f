import { describe, expect, it } from 'vitest'
import { memfileIntervals, parseMemfile } from '../../src/leases/memfile.js'
import type { LeaseInterval } from '../../src/leases/types.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'
import { expectedIntervals } from '../helpers/lease-truth.js'

// Lease history from a real Kea 3.0.4 capture against the lease file written in the same run
// (test/fixtures/kea/captured-3.0/kea-dhcp4-INFO-affinity-off.*): lease affinity off
// (hold-reclaimed-time 0), so releases log DHCP4_RELEASE then DHCP4_RELEASE_DELETED, and lease
// caching on (3.0's default), so renewals log DHCP4_LEASE_ALLOC then DHCP4_LEASE_REUSE.
// Offline: what the live ground truth (ground-truth.test.ts) checks, for a user's clone too.

describe('real Kea 3.0.4: released leases deleted, cached renewals', async () => {
  const { events } = await parseBuffer(readFixture('captured-3.0/kea-dhcp4-INFO-affinity-off.log'), { host: 'kea', timeZone: 'UTC' })
  const fromLog = [...expectedIntervals(events).values()].flat()
  const fromFile = memfileIntervals(parseMemfile(readFixture('captured-3.0/kea-dhcp4-INFO-affinity-off-leases.csv').toString('utf8')), 'kea')
  const code = new Map(events.map((e) => [e.event.id, e.event.code]))
  const twin = (f: LeaseInterval): LeaseInterval | undefined =>
    fromLog.find((l) => l.lease === f.lease && l.hwaddr === f.hwaddr && Math.abs((l.start as number) - (f.start as number)) <= 1000)

  it('the capture has both pairs of lines', () => {
    const codes = events.map((e) => e.event.code)
    expect(codes.filter((c) => c === 'DHCP4_RELEASE_DELETED').length).toBeGreaterThan(5)
    expect(codes.filter((c) => c === 'DHCP4_LEASE_REUSE').length).toBeGreaterThan(10)
    expect(fromFile.length).toBeGreaterThan(10)
  })

  it('every lease in the lease file has one interval from the log: same client, same start; a release ends it, observed, with both lines', () => {
    for (const f of fromFile) {
      const l = twin(f)
      expect(l, `${f.lease} ${f.hwaddr ?? ''} from ${new Date(f.start as number).toISOString()}`).toBeDefined()
      if (l?.end_reason === 'release') {
        expect(l.certainty).toBe('observed')
        expect(l.evidence.map((id) => code.get(id)).slice(-2)).toEqual(['DHCP4_RELEASE', 'DHCP4_RELEASE_DELETED'])
        // The lease file's removal row has no time: it ends no later than the expiry there.
        expect(l.end as number).toBeLessThanOrEqual((f.end as number) + 1000)
      }
    }
    expect(fromLog.filter((l) => l.end_reason === 'release').length).toBeGreaterThan(5)
  })

  it('a lease still held ends when the lease file says it expires (to the second), reuses included', () => {
    let checked = 0
    for (const f of fromFile.filter((x) => x.end_reason === 'expiry-by-lifetime')) {
      const l = twin(f) as LeaseInterval
      if (l.end_reason === 'release') continue
      expect(Math.abs((l.end as number) - (f.end as number)), `${f.lease} ${f.hwaddr ?? ''}`).toBeLessThanOrEqual(1000)
      checked++
    }
    expect(checked).toBeGreaterThan(5)
  })
})
