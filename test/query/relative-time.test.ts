import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseTime } from '../../src/leases/address.js'
import { parseQuery } from '../../src/query/parse.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// The README promises `time >= now-15m`; the parser resolves a relative time to an absolute
// instant once, so every store answers it like any RFC 3339 bound.

describe('relative times', () => {
  it('parseTime reads now and now±N[smhdw] against the given clock', () => {
    const now = Date.parse('2026-11-24T12:00:00Z')
    expect(parseTime('now', 'time', now)).toBe(now)
    expect(parseTime('now-15m', 'time', now)).toBe(now - 15 * 60_000)
    expect(parseTime('now-7d', 'time', now)).toBe(now - 7 * 86_400_000)
    expect(parseTime('now+1h', 'time', now)).toBe(now + 3_600_000)
    expect(() => parseTime('now-15x', 'time', now)).toThrow(/RFC 3339 .*now-15m/)
  })

  it('the query language takes now-15m in time ranges', () => {
    const before = Date.now()
    const node = parseQuery('time >= now-15m')
    const after = Date.now()
    expect(node).toMatchObject({ type: 'range', field: '@timestamp', op: '>=' })
    const at = Date.parse((node as { value: string }).value)
    expect(at).toBeGreaterThanOrEqual(before - 15 * 60_000)
    expect(at).toBeLessThanOrEqual(after - 15 * 60_000)
    expect(parseQuery('@timestamp < now')).toMatchObject({ type: 'range', op: '<' })
  })

  it('a store answers time >= now-N like the absolute bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-reltime-'))
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')])).code).toBe(0)
    const store = new SqliteStore({ path: join(dir, 'keatrail.db') })
    try {
      // The fixture was logged on 2026-11-24: older than a minute, and younger than 100 years.
      const recent = parseQuery('time >= now-1m')
      const all = parseQuery('time >= now-36500d AND time < now')
      expect((await store.search({ where: recent! })).events).toHaveLength(0)
      expect((await store.search({ where: all!, size: 1000 })).events).toHaveLength(206)
    } finally {
      await store.close()
    }
  })

  it('keatrail lease at ADDRESS now', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-reltime-'))
    await runCli(['import', '--data-dir', dir, '--tz', 'UTC', join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')])
    const before = Date.now()
    const r = await runCli(['lease', 'at', '192.0.2.10', 'now', '--data-dir', dir, '--json'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const answer = JSON.parse(r.out) as { time: string }
    expect(Date.parse(answer.time)).toBeGreaterThanOrEqual(before)
    expect(Date.parse(answer.time)).toBeLessThanOrEqual(Date.now())
  })
})
