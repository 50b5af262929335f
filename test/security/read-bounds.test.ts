import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { MAX_PAGE_BYTES } from '../../src/store/types.js'
import { startKeatrail, writeConfig, type Keatrail } from '../chaos/harness.js'
import { parseBuffer } from '../helpers/fixtures.js'

// H1, as reproduced: after a flood of 1,100 syslog frames of 60 KB (each stored event ~120 KB:
// message + event.original), one `GET /api/v1/events?size=1000&q=ip:10.200.0.0/16` made a real
// `keatrail run` (256 MiB heap, as deployed) reach its heap limit and die. The page now stops at
// MAX_PAGE_BYTES; the process answers and stays up.

const N = 1100
const dir = mkdtempSync(join(tmpdir(), 'kt-read-bounds-'))
let kt: Keatrail | undefined
afterAll(async () => {
  if (kt !== undefined && kt.proc.exitCode === null) { kt.proc.kill('SIGKILL'); await kt.exited }
  rmSync(dir, { recursive: true, force: true })
})

describe('security: one read cannot exhaust keatrail run\'s heap', () => {
  it('answers size=1000 of 1,100 ~120 KB events within the page bound, with a cursor, and stays up', async () => {
    const line = '2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/15928.140567963111936] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[00:63:6c:69:65:6e:74:2d:41], tid=0x7f74d74a: lease 10.200.0.1 has been allocated for 40 seconds\n'
    const base = (await parseBuffer(line, { timeZone: 'UTC' })).events[0] as KeaEvent
    expect(base.related?.ip).toContain('10.200.0.1')
    const seed = new SqliteStore({ path: join(dir, 'data', 'keatrail.db'), synchronous: 'normal' })
    for (let i = 0; i < N; i += 50) {
      await seed.write(Array.from({ length: Math.min(50, N - i) }, (_, k): KeaEvent => {
        const text = `flood ${i + k} ${'A'.repeat(60_000)}`
        return { ...base, '@timestamp': new Date(Date.UTC(2026, 10, 24) + (i + k) * 1000).toISOString(), message: text, event: { ...base.event, id: `flood-${i + k}`, original: text } }
      }))
    }
    await seed.close()

    kt = startKeatrail(writeConfig(dir, { sources: [], api: { port: 0, rateLimit: { max: 1_000_000, windowMs: 60_000 } } }))
    const api = await kt.apiUrl()
    const res = await fetch(`${api}/api/v1/events?size=1000&q=${encodeURIComponent('ip:10.200.0.0/16')}`, { signal: AbortSignal.timeout(60_000) })
    const body = await res.text()
    expect(res.status).toBe(200)
    expect(body.length).toBeLessThanOrEqual(MAX_PAGE_BYTES + 2 * 130_000)
    const page = JSON.parse(body) as { events: unknown[], cursor?: string }
    expect(page.events.length).toBeGreaterThan(0)
    expect(page.events.length).toBeLessThan(N)
    expect(page.cursor).toBeDefined()
    expect((await fetch(`${api}/healthz`)).status).toBe(200)
    expect(kt.proc.exitCode).toBeNull()
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
  }, 240_000)
})
