import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { evidenceReport } from '../../src/leases/report.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer } from '../helpers/fixtures.js'

// An evidence report's timeline (issue 22): the holders at the time asked, and who held the
// address just before and just after — also when one lease was taken over by the next at the
// same millisecond (superseded: the one before ends exactly when the holder begins).

const line = (t: string, mac: string, tid: string): string =>
  `2026-11-24 ${t} INFO  [kea-dhcp4.leases/7163.140522679509504] DHCP4_LEASE_ALLOC [hwtype=1 ${mac}], cid=[no info], tid=${tid}: lease 192.0.2.50 has been allocated for 3600 seconds`

describe('evidenceReport', () => {
  it('draws the holder before and after a lease taken over at the same millisecond', async () => {
    const log = [line('09:00:00.000', '02:00:00:00:00:0a', '0x1'), line('09:10:00.000', '02:00:00:00:00:0b', '0x2'), line('09:20:00.000', '02:00:00:00:00:0c', '0x3')].join('\n') + '\n'
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-report-')), 'k.db'), readers: { workers: 0 } })
    try {
      await store.write((await parseBuffer(log, { host: 'kea-a', path: 'takeover.log', timeZone: 'UTC' })).events)
      const r = await evidenceReport(store, '192.0.2.50', '2026-11-24T09:15:00Z', { keatrailVersion: 'test' })
      expect(r.timeline.map((iv) => [iv.role, iv.mac, iv.end_reason])).toEqual([
        ['before', '02-00-00-00-00-0A', 'superseded'],
        ['holder', '02-00-00-00-00-0B', 'superseded'],
        ['after', '02-00-00-00-00-0C', expect.any(String)]
      ])
      // Each interval's evidence line, in the timeline's order.
      expect(r.evidence.map((e) => r.timeline[e.interval]?.role)).toEqual(['before', 'holder', 'after'])
      expect(r.chain?.link).toMatch(/^[0-9a-f]{64}$/)
    } finally {
      await store.close()
    }
  })
})
