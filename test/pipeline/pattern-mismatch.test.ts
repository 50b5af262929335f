import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { suggestPattern } from '../../src/parse/mismatch.js'
import { resolvePattern } from '../../src/parse/patterns.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import type { Source } from '../../src/pipeline/types.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

/** A source that hands over these events in batches of 50 and then waits for the abort. */
function fixedSource (name: string, events: KeaEvent[]): Source {
  return {
    name,
    checkpoint: () => {},
    run: async (emit, signal) => {
      for (let i = 0; i < events.length; i += 50) await emit({ source: name, events: events.slice(i, i + 50), ack: () => {} })
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    }
  }
}

describe('a source whose lines mostly do not match its pattern', () => {
  it('is logged once, coded, with the built-in pattern its lines look like; a matching source is not', async () => {
    // Kea's file-output log read with the syslog pattern: every record unmatched.
    const wrong = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { pattern: resolvePattern('kea-syslog') })).events
    const right = (await parseBuffer(readFixture('kea-2.2.0-dhcp6-INFO-full.log'))).events
    expect(wrong.every((e) => e.kea.parse.status === 'unmatched')).toBe(true)
    const errors: Array<{ code: string, msg: string, fields?: Record<string, unknown> }> = []
    const log = { info: () => {}, error: (code: string, msg: string, fields?: Record<string, unknown>) => { errors.push({ code, msg, ...(fields === undefined ? {} : { fields }) }) } }
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-mismatch-')), 'k.db') })
    const pipeline = new Pipeline(store, { log })
    const stop = new AbortController()
    const running = pipeline.run([fixedSource('wrong', wrong), fixedSource('right', right)], stop.signal)
    await expect.poll(() => pipeline.counters.stored, { timeout: 10_000 }).toBe(wrong.length + right.length)
    stop.abort()
    await running
    await store.close()
    // Stored all the same: a line is never lost.
    const mismatch = errors.filter((e) => e.code === 'KEATRAIL_ERR_PATTERN_MISMATCH')
    expect(mismatch).toHaveLength(1)
    expect(mismatch[0]?.msg).toMatch(/^Source wrong: \d+ of \d+ records \(100 %\) did not match the pattern .*look like the built-in pattern kea-file: set `pattern: kea-file` in its configuration$/)
    expect(mismatch[0]?.fields).toMatchObject({ source: 'wrong' })
  })

  it('suggests the built-in pattern most lines match, or none', () => {
    expect(suggestPattern(['INFO  [kea-dhcp4.dhcp4.139] DHCP4_STARTED Kea DHCPv4 server version 2.2.0 started'])).toBe('kea-syslog')
    expect(suggestPattern(['INFO  DHCP4_STARTED Kea DHCPv4 server version 2.2.0 started'])).toBe('debian-systemd')
    expect(suggestPattern(['2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/1.2] DHCP4_LEASE_ALLOC x'])).toBe('kea-file')
    expect(suggestPattern(['2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/1] DHCP4_LEASE_ALLOC x'])).toBe('kea-file-pre-1.7.7')
    expect(suggestPattern(['hello world', 'nothing Kea here'])).toBeUndefined()
  })
})
