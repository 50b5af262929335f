import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { history, historyPage } from '../../src/leases/query.js'
import { MAX_INTERVALS, type LeaseStore } from '../../src/leases/types.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer } from '../helpers/fixtures.js'

// H2: 100,000 forged DHCP4_LEASE_ALLOC lines for one MAC made `leases/history?mac=` answer
// 30 MB after 10-12 s on the main thread (one gap query per interval). An answer now holds at
// most MAX_INTERVALS intervals, says `truncated`, and reads the gaps once per scope.

const dir = mkdtempSync(join(tmpdir(), 'kt-hist-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

const N = MAX_INTERVALS + 300
const T0 = Date.UTC(2026, 10, 24, 9, 0, 0)

function allocations (): string {
  const lines: string[] = []
  for (let i = 0; i < N; i++) {
    const t = new Date(T0 + i * 60_000).toISOString().replace('T', ' ').replace('Z', '')
    lines.push(`${t} INFO  [kea-dhcp4.leases/15928.140567963111936] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[00:63:6c:69:65:6e:74:2d:41], tid=0x${i.toString(16)}: lease 10.${Math.floor(i / 250)}.${i % 250}.1 has been allocated for 40 seconds`)
  }
  return lines.join('\n') + '\n'
}

/** The store's lease half, counting its gap queries. */
function counting (leases: LeaseStore): { leases: LeaseStore, gapQueries: () => number } {
  let n = 0
  const wrapped = new Proxy(leases, {
    get (target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown
      if (typeof v !== 'function') return v
      return (...args: unknown[]) => {
        if (key === 'gapsIn') n++
        return (v as (...a: unknown[]) => unknown).apply(target, args)
      }
    }
  })
  return { leases: wrapped, gapQueries: () => n }
}

describe('lease history bounded', () => {
  it('answers at most MAX_INTERVALS intervals of one client with truncated, and one gap query per scope', async () => {
    const store = new SqliteStore({ path: join(dir, 'hist.db') })
    const { events } = await parseBuffer(allocations(), { timeZone: 'UTC', host: 'kea-a' })
    expect(events).toHaveLength(N)
    await store.write(events)
    // Input lost during the 11th allocation only.
    await store.leases.recordGap({ scope: '*', from: T0 + 10 * 60_000 + 5_000, to: T0 + 10 * 60_000 + 6_000, reason: 'test drop' })
    const { leases, gapQueries } = counting(store.leases)
    const page = await historyPage(leases, { mac: '02:00:00:00:00:0a' })
    expect(page.truncated).toBe(true)
    expect(page.intervals).toHaveLength(MAX_INTERVALS)
    expect(page.intervals[0]?.address).toBe('10.0.0.1')
    expect(gapQueries()).toBe(1)
    // The gap check still applies, interval by interval.
    expect(page.intervals.filter((h) => h.certainty === 'gap').map((h) => h.address)).toEqual(['10.0.10.1'])
    // A narrower window is complete.
    const narrow = await historyPage(leases, { mac: '02:00:00:00:00:0a', from: T0, to: T0 + 100 * 60_000 })
    expect(narrow.truncated).toBe(false)
    expect(narrow.intervals).toHaveLength(100)
    expect(await history(leases, { mac: '02:00:00:00:00:0a' })).toHaveLength(MAX_INTERVALS)
    await store.close()
  })
})
