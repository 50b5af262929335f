import { describe, expect, it } from 'vitest'
import { CsvTailer, truthIntervals } from './lease-truth.js'

// The ground truth's reading of Kea's lease file judges every lease history answer of the
// real-Kea suites: its own rules are tested on rows as Kea 3.0 wrote them.

const HEADER = 'address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id'
const DUID = (last: string): string => `00:01:00:01:32:a9:9e:f1:00:0c:01:02:03:${last}`
const T = 1796661880 // 2026-12-07T16:44:40Z, seconds

/** A prefix row of 2001:db8:8000:900::/56 as Kea 3.0 writes it, seen at `atMs` past T. */
const row = (client: string, valid: number, expire: number, state: number, atMs: number): { fields: string[], at: number } => ({
  fields: `2001:db8:8000:900::,${DUID(client)},${valid},${T + expire},1,${valid === 0 ? 0 : 7},2,1,56,0,0,,00:0c:01:02:03:2b,${state},,1,2,0`.split(','),
  at: (T * 1000) + atMs
})

function tailerOf (rows: Array<{ fields: string[], at: number }>): CsvTailer {
  const t = new CsvTailer('/nonexistent')
  t.header = HEADER.split(',')
  t.rows.push(...rows)
  return t
}

const at = (ms: number): number => (T * 1000) + ms

/** Each interval as [client's last characters, start, end (ms past T), end width, stale]. */
const spansOf = (truth: ReturnType<typeof truthIntervals>): Array<[string, number, number, number, boolean]> =>
  truth.map((iv) => [iv.client.slice(-5), iv.start - at(0), iv.end - at(0), iv.endWidth, iv.stale ?? false])

/**
 * CI, Kea 3.0: …:2b releases (state 3, kept for reuse); the prefix is given to …:2f; the
 * reclamation timer writes …:2b's released copy back as reclaimed.
 */
const STALE_AFTER_REUSE = [
  row('2b', 10, 10, 0, 980),
  row('2b', 0, 0, 3, 3147),
  row('2f', 10, 13, 0, 3180),
  row('2b', 0, 0, 2, 3200)
]

describe('the lease file as ground truth', () => {
  it('ends a holding at the stale reclamation that freed it, with the span to the next change as its width', () => {
    // …:30 gets the prefix 30 ms after the stale row.
    expect(spansOf(truthIntervals(tailerOf([...STALE_AFTER_REUSE, row('30', 10, 13, 0, 3230)]), 6))).toEqual([
      [':2b/1', 0, 3147, 0, false],
      [':2f/1', 3000, 3200, 30, true],
      [':30/1', 3000, 13000, 999, false]
    ])
  })

  it('gives a stale end no later change the span to the holding\'s own expiry', () => {
    const [, stale] = truthIntervals(tailerOf(STALE_AFTER_REUSE), 6)
    expect(stale?.client).toBe(`${DUID('2f')}/1`)
    expect([stale?.end, stale?.endWidth, stale?.stale]).toEqual([at(3200), 13000 - 3200, true])
  })

  it('runs a stale end\'s width past the flush timer\'s second copy of the stale row, to the next holding', () => {
    const [, stale] = truthIntervals(tailerOf([...STALE_AFTER_REUSE, row('2b', 0, 0, 2, 4700), row('30', 10, 15, 0, 5900)]), 6)
    expect([stale?.client.slice(-5), stale?.end, stale?.endWidth]).toEqual([':2f/1', at(3200), 2700])
  })

  it('caps a stale end\'s width at the holding\'s own expiry', () => {
    const [, stale] = truthIntervals(tailerOf([...STALE_AFTER_REUSE, row('30', 10, 30, 0, 20_000)]), 6)
    expect([stale?.end, stale?.endWidth]).toEqual([at(3200), 13000 - 3200])
  })

  it('knows a stale copy of the holder\'s own earlier holding (released and taken again in one second)', () => {
    expect(spansOf(truthIntervals(tailerOf([
      row('2f', 10, 13, 0, 3100),
      row('2f', 0, 3, 3, 3300),
      row('2f', 10, 13, 0, 3500),
      row('2f', 0, 3, 2, 3600),
      row('30', 10, 14, 0, 4000)
    ]), 6))).toEqual([
      [':2f/1', 3000, 3300, 0, false],
      [':2f/1', 3000, 3600, 400, true],
      [':30/1', 4000, 14000, 999, false]
    ])
  })

  it('leaves a holding that ran out at its expiry whatever reclamation row comes later', () => {
    const truth = truthIntervals(tailerOf([
      row('2f', 10, 13, 0, 3180),
      row('2b', 0, 2, 2, 40_000)
    ]), 6)
    expect(truth.map((iv) => [iv.end - at(0), iv.endWidth, iv.stale ?? false])).toEqual([[13000, 999, false]])
  })

  it('reads DHCPv4 rows the same way, the client by hwaddr', () => {
    const header = 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id'
    const v4 = (mac: string, valid: number, expire: number, state: number, atMs: number): { fields: string[], at: number } =>
      ({ fields: `192.0.2.10,00:0c:01:02:03:${mac},,${valid},${T + expire},1,0,0,,${state},,0`.split(','), at: at(atMs) })
    const t = tailerOf([v4('2b', 8, 8, 0, 500), v4('2b', 0, 0, 3, 2100), v4('2f', 8, 10, 0, 2200), v4('2b', 0, 0, 2, 2300), v4('30', 8, 11, 0, 3400)])
    t.header = header.split(',')
    expect(truthIntervals(t, 4).map((iv) => [iv.client, iv.end - at(0), iv.endWidth, iv.stale ?? false])).toEqual([
      ['00:0c:01:02:03:2b', 2100, 0, false],
      ['00:0c:01:02:03:2f', 2300, 1100, true],
      ['00:0c:01:02:03:30', 11000, 999, false]
    ])
  })

  it('ends a holding its own reclamation ends at the expiry, known to the second', () => {
    const truth = truthIntervals(tailerOf([
      row('2f', 10, 13, 0, 3180),
      row('2f', 10, 13, 2, 14100),
      row('2f', 0, 3, 2, 15100)
    ]), 6)
    expect(truth.map((iv) => [iv.end - at(0), iv.endWidth, iv.stale ?? false])).toEqual([[13000, 999, false]])
  })
})
