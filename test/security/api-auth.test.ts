import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { apiKeyHash, type AuditEntry } from '../../src/api/app.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture, ROOT } from '../helpers/fixtures.js'
import { rawRequest, UNAUTHENTICATED_VARIANTS } from '../helpers/raw-http.js'

// `keatrail serve` as deployed (a real process, from the build: npm run build first), with API
// keys, on a store filled from real Kea logs: every spelling of a protected route that the
// router resolves (percent-encoded paths, absolute-form targets) is sent as a raw request line
// over loopback, and must be refused without a key and answered with one.

const KEY = `kt_security-reader-${'x'.repeat(24)}`
const ADMIN = `kt_security-admin-${'y'.repeat(24)}`
const BIN = join(ROOT, 'bin', 'keatrail.js')

describe('keatrail serve with API keys: nothing without a key, whatever the spelling', () => {
  let proc: ChildProcess | undefined
  let exited: Promise<unknown> = Promise.resolve()
  let port = 0
  let stderr = ''
  let dataDir = ''

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('this test runs the built CLI: npm run build first')
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-'))
    dataDir = join(dir, 'data')
    mkdirSync(dataDir)
    const store = new SqliteStore({ path: join(dataDir, 'keatrail.db') })
    await store.write((await parseBuffer(readFixture('captured/kea-dhcp4-INFO-file.log'), { host: 'kea-a', path: 'kea-dhcp4.log' })).events)
    await store.close()
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, stringify({
      dataDir,
      api: {
        keys: [{ name: 'reader', sha256: apiKeyHash(KEY), role: 'read' }, { name: 'ops', sha256: apiKeyHash(ADMIN), role: 'admin' }],
        // Room for every variant below: the refused-attempt limit is tested on its own at the end.
        rateLimit: { failedAuthMax: 2 * UNAUTHENTICATED_VARIANTS.length + 5, windowMs: 600_000 }
      }
    }))
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] })
    proc = child
    exited = new Promise((resolve) => child.on('exit', resolve))
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    await vi.waitFor(() => {
      if (child.exitCode !== null) throw new Error(`keatrail serve exited ${child.exitCode}:\n${stderr}`)
      const m = /"url":"(http:\/\/127\.0\.0\.1:(\d+))".*"msg":"API and web UI listening\."/.exec(stderr)
      if (m === null) throw new Error(`not listening yet:\n${stderr}`)
      port = Number(m[2])
    }, { timeout: 20_000, interval: 50 })
  }, 60_000)

  afterAll(async () => {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill('SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    }
  })

  for (const line of UNAUTHENTICATED_VARIANTS) {
    it(`401 without a key: ${line}`, async () => {
      const r = await rawRequest(port, line)
      expect(r.status, r.body).toBe(401)
      if (!line.startsWith('HEAD')) expect(JSON.parse(r.body)).toEqual({ code: 'KEATRAIL_ERR_AUTH', message: expect.any(String) })
      // And with a wrong key.
      expect((await rawRequest(port, line, { authorization: 'Bearer kt_not-a-key-0123456789' })).status).toBe(401)
    })
  }

  it('with the key, the same spellings reach their routes (200), the admin routes with the admin key', async () => {
    const reader = { authorization: `Bearer ${KEY}` }
    for (const line of ['GET /%61pi/v1/events?size=1 HTTP/1.1', 'GET /ap%69/v1/stats/top?field=mac HTTP/1.1', 'GET http://x/api/v1/events?size=1 HTTP/1.1', 'GET /%6detrics HTTP/1.1', 'GET /%61pi/v1/leases/history?mac=02-00-00-00-00-0a HTTP/1.1']) {
      const r = await rawRequest(port, line, reader)
      expect([line, r.status]).toEqual([line, 200])
    }
    const events = JSON.parse((await rawRequest(port, 'GET /%61pi/v1/events?size=1 HTTP/1.1', reader)).body) as { events: unknown[] }
    expect(events.events).toHaveLength(1)
    expect((await rawRequest(port, 'GET /%61pi/v1/deadletter HTTP/1.1', reader)).status).toBe(403)
    expect((await rawRequest(port, 'GET /%61pi/v1/deadletter HTTP/1.1', { authorization: `Bearer ${ADMIN}` })).status).toBe(200)
    expect((await rawRequest(port, 'POST http://x/api/v1/deadletter/retry HTTP/1.1', { authorization: `Bearer ${ADMIN}` })).status).toBe(200)
    // Public: the UI page and health, without a key.
    for (const line of ['GET / HTTP/1.1', 'GET /healthz HTTP/1.1', 'GET /readyz HTTP/1.1']) expect([line, (await rawRequest(port, line)).status]).toEqual([line, 200])
  })

  it('the reads are in the audit log (0600), the refused attempts are not', async () => {
    const path = join(dataDir, 'audit.log')
    // The entry is written once the answer has gone: poll, bounded.
    await vi.waitFor(() => { expect(readFileSync(path, 'utf8')).toContain('"route":"/api/v1/deadletter/retry"') }, { timeout: 5000 })
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const entries = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry)
    expect(entries.every((e) => e.key === 'reader' || e.key === 'ops')).toBe(true)
    expect(entries.find((e) => e.route === '/api/v1/leases/history')).toMatchObject({ key: 'reader', ip: '127.0.0.1', query: { mac: '02-00-00-00-00-0a' }, status: 200 })
  })

  it('refused attempts from one address are rate limited (429), a valid key still answers', async () => {
    const codes: number[] = []
    for (let i = 0; i < 10 && !codes.includes(429); i++) codes.push((await rawRequest(port, 'GET /api/v1/events HTTP/1.1')).status)
    expect(codes.at(-1)).toBe(429)
    expect((await rawRequest(port, 'GET /api/v1/events?size=1 HTTP/1.1', { authorization: `Bearer ${KEY}` })).status).toBe(200)
  })
})
