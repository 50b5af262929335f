import { describe, expect, it } from 'vitest'
import { apiKeyHash, buildApp, type AuditEntry, type AuditRecord } from '../../src/api/app.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

// The review of the audit fix: a route that changes state was audited only once answered, so
// with the audit log unwritable the dead-letter retry ran (every dead letter moved into the
// store) and its client was told 503 "not answered", with no entry anywhere.

const READ = 'kt_state-read-0123456789abcdef'
const ADMIN = 'kt_state-admin-0123456789abcdef'
const keys = [{ name: 'reader', sha256: apiKeyHash(READ), role: 'read' as const }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' as const }]

describe('audit of routes that change state', () => {
  it('the dead-letter retry is recorded before it acts: an audit log that cannot be written refuses it with nothing done', async () => {
    const store = new SqliteStore({ path: ':memory:' })
    const events = (await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-a', path: 'x' })).events.slice(0, 20)
    const dlq = new DeadLetterStore(':memory:')
    dlq.add('elasticsearch', events.map((event) => ({ event, reason: 'r' })))
    const failing = await buildApp({ store, deadLetters: dlq, api: { keys }, audit: () => { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) } })
    const refused = await failing.inject({ method: 'POST', url: '/api/v1/deadletter/retry', headers: { authorization: `Bearer ${ADMIN}` } })
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'KEATRAIL_ERR_AUDIT_WRITE' })
    expect([dlq.count(), await store.count({})]).toEqual([20, 0])
    await failing.close()

    // Writable: one entry before (status 0), one with the outcome.
    const log: AuditRecord[] = []
    const app = await buildApp({ store, deadLetters: dlq, api: { keys }, audit: (e) => log.push(e) })
    const done = await app.inject({ method: 'POST', url: '/api/v1/deadletter/retry?limit=5', headers: { authorization: `Bearer ${ADMIN}` } })
    expect(done.statusCode).toBe(200)
    expect((log as AuditEntry[]).map((e) => [e.key, e.route, e.query, e.status])).toEqual([
      ['ops', '/api/v1/deadletter/retry', { limit: 5 }, 0],
      ['ops', '/api/v1/deadletter/retry', { limit: 5 }, 200]
    ])
    expect(dlq.count()).toBe(15)
    await app.close()
    await store.close()
    dlq.close()
  })

  it('a batch attribution\'s entry leaves out what the request did not give (no "undefined")', async () => {
    const store = new SqliteStore({ path: ':memory:' })
    const log: AuditRecord[] = []
    const app = await buildApp({ store, api: { keys }, audit: (e) => log.push(e) })
    const r = await app.inject({ method: 'POST', url: '/api/v1/leases/attribute', headers: { authorization: `Bearer ${READ}` }, payload: { rows: [{ address: '192.0.2.10', time: '2026-11-24T18:02:30Z' }] } })
    expect(r.statusCode).toBe(200)
    expect((log[0] as AuditEntry).query).toEqual({ rows: 1 })
    await app.close()
    await store.close()
  })
})
