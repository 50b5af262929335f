import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { apiKeyHash, buildApp } from '../../src/api/app.js'
import { createLogger } from '../../src/app/logger.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// As the auditor found it: every refused request (no key, a wrong key) was one warn line, on
// and on after the client was rate limited (429): autocannon -c 20 -d 10 with a wrong key made
// 25,607 lines (4.4 MB) in 10 s from one client. Now: one line at once, then at most one per
// 10 s with how many refusals there were since and from how many addresses.

const dir = mkdtempSync(join(tmpdir(), 'kt-refusal-log-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

describe('security: refused requests do not flood the log', () => {
  it('1,000 refusals (401 then 429) from two addresses: one line at once, the rest counted into the line at close; never the key', async () => {
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const lines: Array<Record<string, unknown>> = []
    const logger = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
    const app = await buildApp({ store, loggerInstance: logger, api: { keys: [{ name: 'reader', sha256: apiKeyHash('kt_the-right-key-0123456789') }], rateLimit: { failedAuthMax: 5 } } })
    const statuses = new Map<number, number>()
    const refused = (): Array<Record<string, unknown>> => lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('API request'))
    try {
      for (let i = 0; i < 1000; i++) {
        const r = await app.inject({ url: '/api/v1/events', remoteAddress: i % 2 === 0 ? '192.0.2.1' : '192.0.2.2', headers: i % 3 === 0 ? {} : { authorization: 'Bearer kt_guessed-key-0123456789' } })
        statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1)
      }
      expect(Object.fromEntries(statuses)).toEqual({ 401: 10, 429: 990 })
      // Before: 1,000 lines.
      expect(refused()).toHaveLength(1)
      expect(refused()[0]).toMatchObject({ level: 'warn', component: 'api', code: 'KEATRAIL_ERR_AUTH', count: 1, clients: 1, ip: '192.0.2.1', route: '/api/v1/events' })
    } finally {
      await app.close()
      await store.close()
    }
    expect(refused()).toHaveLength(2)
    expect(refused()[1]).toMatchObject({ level: 'warn', code: 'KEATRAIL_ERR_AUTH', count: 999, clients: 2, ip: '192.0.2.2' })
    expect(JSON.stringify(lines)).not.toContain('guessed-key')
  })
})
