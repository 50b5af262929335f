import { execFileSync } from 'node:child_process'
import { appendFileSync, chmodSync, closeSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { apiKeyHash, buildApp, type AuditEntry, type AuditRecord, type AuditRow } from '../../src/api/app.js'
import { openAuditLog, serveApi } from '../../src/api/serve.js'
import { createLogger } from '../../src/app/logger.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { runCli } from '../helpers/cli.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'
import { canMount } from '../helpers/syslog.js'

// The audit log answers "who looked up whom" for an abuse/legal desk. As the auditor found it:
// a read whose entry could not be written (disk full) was answered anyway, 200 with data; a
// batch attribution wrote 338 bytes per row; logrotate's rename left keatrail writing the old
// file; a device named as the audit log was chmod-ed 0600 (as root: /dev/null, host-wide).

const KEY = 'kt_test-audit-reader-0123456789'
const auth = { authorization: `Bearer ${KEY}` }
const keys = [{ name: 'reader', sha256: apiKeyHash(KEY) }]
const api = (auditLog: string): Record<string, unknown> => ({ port: 0, auditLog, keys, rateLimit: { max: 100_000, windowMs: 60_000 } })
/** /leases/at for the held address, its time told apart by the milliseconds (`ms`). */
const at = (ms: number): string => `/api/v1/leases/at?address=192.0.2.10&time=2026-11-24T18:02:30.${String(ms).padStart(3, '0')}Z`

const base = mkdtempSync(join(tmpdir(), 'kt-audit-sec-'))
let store: SqliteStore
beforeAll(async () => {
  store = new SqliteStore({ path: join(base, 'k.db') })
  const f = 'captured/kea-dhcp4-INFO-file.log'
  await store.write((await parseBuffer(readFixture(f), { host: 'kea-a', path: f })).events)
}, 60_000)
afterAll(async () => {
  await store.close()
  rmSync(base, { recursive: true, force: true })
})

/** A pino logger writing into an array of parsed JSON lines. */
function captured (): { lines: Array<Record<string, unknown>>, logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
  return { lines, logger }
}

/** Every line of an audit file, parsed: a line cut in the middle fails here. */
function entries (path: string): AuditRecord[] {
  const text = readFileSync(path, 'utf8')
  if (text !== '') expect(text.endsWith('\n')).toBe(true)
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord)
}
const isEntry = (e: AuditRecord): e is AuditEntry => 'route' in e

async function get (url: string, path: string): Promise<{ status: number, type: string, disposition: string | null, text: string }> {
  const r = await fetch(`${url}${path}`, { headers: auth })
  return { status: r.status, type: r.headers.get('content-type') ?? '', disposition: r.headers.get('content-disposition'), text: await r.text() }
}

async function failures (url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: auth })).text()
  return Number(/^keatrail_audit_write_failures_total (\d+)$/m.exec(text)?.[1] ?? NaN)
}

/** POSTs a batch attribution and reads whatever arrives until the server ends or cuts the answer. */
async function attribute (url: string, rows: unknown[]): Promise<{ status: number, body: string }> {
  const payload = JSON.stringify({ rows })
  return await new Promise((resolve, reject) => {
    const req = request(`${url}/api/v1/leases/attribute`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('error', () => {})
      res.on('close', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Fills the file system of `path` with one file until it refuses (ENOSPC). */
function fill (path: string): void {
  const fd = openSync(path, 'w')
  try {
    for (const size of [64 * 1024, 512]) {
      const chunk = Buffer.alloc(size, 120)
      try { for (let i = 0; i < 1_000_000; i++) writeSync(fd, chunk) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err }
    }
  } finally { closeSync(fd) }
}

describe.skipIf(!canMount && process.env.CI !== 'true')(`security: a read whose audit entry cannot be written is not answered (a full file system, 1 MiB tmpfs)${canMount ? '' : ' (skipped: needs root to mount a tmpfs)'}`, () => {
  const mnt = join(base, 'tiny')
  beforeAll(() => {
    mkdirSync(mnt)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mnt])
  })
  afterAll(() => { execFileSync('umount', ['-l', mnt]) })

  it('503 KEATRAIL_ERR_AUDIT_WRITE without data on every route; whole entries only, one per answer; counted; one coded line; answered again once there is room', async () => {
    const { lines, logger } = captured()
    const path = join(mnt, 'audit.log')
    const served = await serveApi(store, api(path), base, {}, undefined, undefined, logger)
    const filler = join(mnt, 'filler')
    let refusedCount = 0
    try {
      expect((await get(served.url, at(0))).status).toBe(200)
      fill(filler)
      // The audit log's last page still has room for a few entries: read until one does not fit.
      const answered: number[] = [0]
      let refused: Awaited<ReturnType<typeof get>> | undefined
      for (let i = 1; i < 300 && refused === undefined; i++) {
        const r = await get(served.url, at(i))
        if (r.status === 200) answered.push(i)
        else refused = r
      }
      // Before: 200 with the holder, every time, the entry lost to ENOSPC.
      expect(refused?.status).toBe(503)
      refusedCount++
      const body = { code: 'KEATRAIL_ERR_AUDIT_WRITE', message: 'The audit log could not record this read, so it is not answered; retry later (the service log has the detail)' }
      expect(JSON.parse(refused?.text ?? '')).toEqual(body)
      // The other data routes too: events, the HTML report (no attachment), a batch attribution.
      for (const path of [at(999), '/api/v1/events?q=ip:192.0.2.10', '/api/v1/leases/history?address=192.0.2.10', '/api/v1/leases/report?address=192.0.2.10&time=2026-11-24T18:02:30Z']) {
        const r = await get(served.url, path)
        expect([path, r.status, r.type, r.disposition, JSON.parse(r.text)]).toEqual([path, 503, 'application/json; charset=utf-8', null, body])
        refusedCount++
      }
      const batch = await attribute(served.url, [{ address: '192.0.2.10', time: '2026-11-24T18:02:30Z' }])
      expect([batch.status, JSON.parse(batch.body)]).toEqual([503, body])
      refusedCount++
      // Whole entries only (the one that did not fit was taken back), one per answered read, in order.
      const written = entries(path).filter(isEntry)
      expect(written.map((e) => [e.route, e.status, e.query.time])).toEqual(answered.map((i) => ['/api/v1/leases/at', 200, `2026-11-24T18:02:30.${String(i).padStart(3, '0')}Z`]))
      expect(await failures(served.url)).toBe(refusedCount)
      // Logged, coded, once: the rest are counted into the next line (throttled).
      const coded = lines.filter((l) => l.code === 'KEATRAIL_ERR_AUDIT_WRITE')
      expect(coded).toHaveLength(1)
      expect(coded[0]).toMatchObject({ level: 'error', component: 'api', count: 1, route: '/api/v1/leases/at', error: expect.stringContaining('ENOSPC') })
      // Room again: answered and recorded.
      unlinkSync(filler)
      expect((await get(served.url, at(998))).status).toBe(200)
      expect(entries(path).filter(isEntry).at(-1)).toMatchObject({ key: 'reader', route: '/api/v1/leases/at', query: { time: '2026-11-24T18:02:30.998Z' }, status: 200 })
    } finally {
      await served.app.close()
      rmSync(filler, { force: true })
    }
    // At close the throttled logger says how many more there were.
    const coded = lines.filter((l) => l.code === 'KEATRAIL_ERR_AUDIT_WRITE')
    expect(coded.reduce((n, l) => n + (l.count as number), 0)).toBe(refusedCount)
    expect(coded.length).toBeLessThanOrEqual(2)
  }, 60_000)

  it('a batch attribution is cut off at the first row whose line does not fit: every row sent was recorded first', async () => {
    const path = join(mnt, 'batch.log')
    const served = await serveApi(store, api(path), base, {})
    const filler = join(mnt, 'filler')
    try {
      // 32 KiB left: a few hundred row lines.
      writeFileSync(join(mnt, 'spare'), Buffer.alloc(32 * 1024, 1))
      fill(filler)
      unlinkSync(join(mnt, 'spare'))
      const rows = Array.from({ length: 5000 }, (_, i) => ({ address: '192.0.2.10', time: '2026-11-24T18:02:30Z', ticket: `T-${i}` }))
      const r = await attribute(served.url, rows)
      expect(r.status).toBe(200)
      const sent = r.body.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l) as { ticket: string })
      const audit = entries(path)
      const head = audit.find((e): e is AuditEntry => isEntry(e) && e.route === '/api/v1/leases/attribute')
      expect(head).toMatchObject({ key: 'reader', ip: '127.0.0.1', method: 'POST', query: { rows: 5000 }, status: 200, batch: expect.stringMatching(/^[\w-]{8}$/) })
      const recorded = audit.filter((e): e is AuditRow => 'row' in e && e.batch === head?.batch)
      expect(recorded.length).toBeGreaterThan(100)
      expect(recorded.length).toBeLessThan(5000)
      expect(recorded.map((e) => e.row)).toEqual(Array.from({ length: recorded.length }, (_, i) => i + 1))
      // Not answered past the last row recorded.
      expect(sent.length).toBeGreaterThan(0)
      expect(sent.length).toBeLessThanOrEqual(recorded.length)
      expect(sent.map((s) => s.ticket)).toEqual(rows.slice(0, sent.length).map((row) => row.ticket))
      expect(await failures(served.url)).toBe(1)
    } finally {
      await served.app.close()
      rmSync(filler, { force: true })
    }
  }, 60_000)
})

describe('security: the audit log follows logrotate', () => {
  it('SIGHUP reopens the path (rename + create), the new file 0600; copytruncate needs nothing; a failed reopen keeps the old file', async () => {
    const dir = mkdtempSync(join(base, 'rotate-'))
    const path = join(dir, 'audit.log')
    const { lines, logger } = captured()
    const hups = process.listenerCount('SIGHUP')
    const served = await serveApi(store, api(path), base, {}, undefined, undefined, logger)
    try {
      expect((await get(served.url, at(1))).status).toBe(200)
      // logrotate (create): the file is renamed away; until told, keatrail writes where it was.
      renameSync(path, `${path}.1`)
      expect((await get(served.url, at(2))).status).toBe(200)
      // Before: no SIGHUP handler (the signal would have ended the process), the rest went to audit.log.1 for ever.
      expect(process.listenerCount('SIGHUP')).toBe(hups + 1)
      process.kill(process.pid, 'SIGHUP')
      await vi.waitFor(() => { expect(existsSync(path)).toBe(true) }, { timeout: 5000, interval: 10 })
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect((await get(served.url, at(3))).status).toBe(200)
      const times = (p: string): unknown[] => entries(p).filter(isEntry).map((e) => e.query.time)
      expect(times(`${path}.1`)).toEqual(['2026-11-24T18:02:30.001Z', '2026-11-24T18:02:30.002Z'])
      expect(times(path)).toEqual(['2026-11-24T18:02:30.003Z'])
      // copytruncate: copied, then cut to 0 under keatrail; the next entry starts the file (no hole of NULs).
      copyFileSync(path, `${path}.2`)
      truncateSync(path, 0)
      expect((await get(served.url, at(4))).status).toBe(200)
      expect(readFileSync(path, 'utf8')).toMatch(/^\{"time":"[^\n]*"2026-11-24T18:02:30\.004Z"[^\n]*\}\n$/)
      // A reopen that cannot happen (the path is now a directory): one coded line, entries still kept.
      renameSync(path, `${path}.3`)
      mkdirSync(path)
      process.kill(process.pid, 'SIGHUP')
      await vi.waitFor(() => { expect(lines.filter((l) => l.code === 'KEATRAIL_ERR_AUDIT_LOG')).toHaveLength(1) }, { timeout: 5000, interval: 10 })
      expect(lines.find((l) => l.code === 'KEATRAIL_ERR_AUDIT_LOG')).toMatchObject({ level: 'error', path, error: expect.stringContaining('is a directory') })
      expect((await get(served.url, at(5))).status).toBe(200)
      expect(times(`${path}.3`)).toEqual(['2026-11-24T18:02:30.004Z', '2026-11-24T18:02:30.005Z'])
    } finally {
      await served.app.close()
    }
    expect(process.listenerCount('SIGHUP')).toBe(hups)
  }, 30_000)
})

describe('security: the audit log has a size bound (api.auditLogMaxBytes)', () => {
  it('full: reads refused, 503, counted, nothing dropped; rotated (rename + SIGHUP, or copytruncate): answered again', async () => {
    // Before: no bound of its own, a read key's batches grew it ~10 MB each until the disk that
    // also holds the store was full.
    const dir = mkdtempSync(join(base, 'bound-'))
    const path = join(dir, 'audit.log')
    const { lines, logger } = captured()
    // Another process (`keatrail serve` beside `keatrail run`) has written to it already.
    writeFileSync(path, `${'{"other":"process"}\n'.repeat(1000)}`)
    const served = await serveApi(store, { ...api(path), auditLogMaxBytes: 65_536 }, base, {}, undefined, undefined, logger)
    try {
      const answered: number[] = []
      let refused: Awaited<ReturnType<typeof get>> | undefined
      for (let i = 0; i < 900 && refused === undefined; i++) {
        const r = await get(served.url, at(i))
        if (r.status === 200) answered.push(i)
        else refused = r
        // Meanwhile the other process writes on (each side's own count would miss the other's).
        if (i === 20) appendFileSync(path, '{"other":"process"}\n'.repeat(1000))
      }
      expect(answered.length).toBeGreaterThan(3)
      expect(refused?.status).toBe(503)
      expect(JSON.parse(refused?.text ?? '')).toMatchObject({ code: 'KEATRAIL_ERR_AUDIT_WRITE' })
      expect(statSync(path).size).toBeLessThanOrEqual(65_536)
      // Every answered read has its entry: none dropped to make room.
      expect(entries(path).filter(isEntry).filter((e) => e.query !== undefined).map((e) => e.query.time)).toEqual(answered.map((i) => `2026-11-24T18:02:30.${String(i).padStart(3, '0')}Z`))
      expect(await failures(served.url)).toBe(1)
      expect(lines.find((l) => l.code === 'KEATRAIL_ERR_AUDIT_WRITE')).toMatchObject({ error: expect.stringContaining('api.auditLogMaxBytes (65536 bytes): rotate it') })
      // Readiness says so beside `ready` (collection goes on), and a gauge to alert on before
      // reads are refused (before: nothing but the failures counter, once they were).
      const ready = async (): Promise<[number, unknown]> => { const r = await fetch(`${served.url}/readyz`); return [r.status, (await r.json() as { audit: unknown }).audit] }
      const room = async (): Promise<number> => Number(/^keatrail_audit_log_room_bytes (\d+)$/m.exec(await (await fetch(`${served.url}/metrics`, { headers: auth })).text())?.[1] ?? NaN)
      expect(await ready()).toEqual([200, 'full'])
      expect(await room()).toBe(65_536 - statSync(path).size)
      expect(await room()).toBeLessThan(1024)
      // logrotate's rename and create, then its postrotate SIGHUP.
      renameSync(path, `${path}.1`)
      process.kill(process.pid, 'SIGHUP')
      await vi.waitFor(() => { expect(existsSync(path)).toBe(true) }, { timeout: 5000, interval: 10 })
      expect(await ready()).toEqual([200, 'ok'])
      expect(await room()).toBeGreaterThan(60_000)
      expect((await get(served.url, at(900))).status).toBe(200)
      for (let i = 0; i < 900 && (await get(served.url, at(901))).status === 200; i++);
      expect((await get(served.url, at(999))).status).toBe(503)
      // copytruncate: the file shrinks under keatrail, which asks its size again before refusing.
      truncateSync(path, 0)
      expect((await get(served.url, at(999))).status).toBe(200)
    } finally {
      await served.app.close()
    }
    // Full: less than 1 KiB left, asked of the file each time.
    for (const [size, full] of [[65_536 - 1025, false], [65_536 - 1023, true]] as const) {
      writeFileSync(path, 'x'.repeat(size - 1) + '\n')
      const log = openAuditLog(path, 65_536)
      try { expect([size, log.full(), log.room()]).toEqual([size, full, 65_536 - size]) } finally { log.close() }
    }
    // Full already at start: said then, once, not only per refused read.
    writeFileSync(path, 'x'.repeat(65_535) + '\n')
    const again = captured()
    const full = await serveApi(store, { ...api(path), auditLogMaxBytes: 65_536 }, base, {}, undefined, undefined, again.logger)
    try {
      expect(again.lines.filter((l) => l.code === 'KEATRAIL_ERR_AUDIT_WRITE')).toMatchObject([{ level: 'error', maxBytes: 65_536, msg: expect.stringContaining('every data read is refused') }])
      expect((await get(full.url, at(1))).status).toBe(503)
    } finally {
      await full.app.close()
    }
  }, 30_000)
})

describe('security: one key cannot fill the audit log (api.auditKeyShare)', () => {
  it('past half the bound (two keys, unset) a key\'s reads are refused, 429, before they run, counted; the other key reads on; a rotation gives it room again', async () => {
    // Before: one read key repeating batch attributions (~10 MB each) filled api.auditLogMaxBytes
    // and every key's reads were refused until an operator rotated the log.
    const OTHER = 'kt_test-audit-other-0123456789'
    const two = [...keys, { name: 'other', sha256: apiKeyHash(OTHER) }]
    const dir = mkdtempSync(join(base, 'share-'))
    const path = join(dir, 'audit.log')
    const { lines, logger } = captured()
    const served = await serveApi(store, { ...api(path), keys: two, auditLogMaxBytes: 65_536 }, base, {}, undefined, undefined, logger)
    const byOther = async (p: string): Promise<number> => (await fetch(`${served.url}${p}`, { headers: { authorization: `Bearer ${OTHER}` } })).status
    const readerBytes = (): number => readFileSync(path, 'utf8').split('\n').filter((l) => l.includes('"key":"reader"')).reduce((n, l) => n + l.length + 1, 0)
    try {
      let refused: Awaited<ReturnType<typeof get>> | undefined
      let answered = 0
      for (let i = 0; i < 900 && refused === undefined; i++) {
        const r = await get(served.url, at(i))
        if (r.status === 200) answered++
        else refused = r
      }
      expect(answered).toBeGreaterThan(50)
      expect(refused?.status).toBe(429)
      expect(JSON.parse(refused?.text ?? '')).toEqual({ code: 'KEATRAIL_ERR_AUDIT_QUOTA', message: expect.stringContaining('32768 of 65536 bytes') })
      expect(readerBytes()).toBeLessThanOrEqual(32_768)
      expect(readerBytes()).toBeGreaterThan(32_768 - 1024)
      // Refused before it runs (the store is not asked), a batch too; nothing more written for it.
      const asked = vi.spyOn(store.leases, 'intervalsAt')
      try {
        expect((await get(served.url, at(1))).status).toBe(429)
        expect(asked).not.toHaveBeenCalled()
      } finally { asked.mockRestore() }
      const size = statSync(path).size
      expect((await attribute(served.url, [{ address: '192.0.2.10', time: '2026-11-24T18:02:30Z' }])).status).toBe(429)
      expect(statSync(path).size).toBe(size)
      // The other key reads, and is recorded.
      expect(await byOther(at(1))).toBe(200)
      expect(entries(path).filter(isEntry).at(-1)).toMatchObject({ key: 'other', status: 200 })
      const metrics = await (await fetch(`${served.url}/metrics`, { headers: { authorization: `Bearer ${OTHER}` } })).text()
      expect(Number(/^keatrail_audit_quota_refusals_total\{key="reader"\} (\d+)$/m.exec(metrics)?.[1])).toBe(3)
      // Not a write failure; /metrics (no stored data, not audited) still answers the refused key.
      expect(await failures(served.url)).toBe(0)
      expect(lines.find((l) => l.code === 'KEATRAIL_ERR_AUDIT_QUOTA')).toMatchObject({ level: 'warn', key: 'reader' })
      // copytruncate: the cut file is seen, the key's count starts again.
      truncateSync(path, 0)
      expect((await get(served.url, at(950))).status).toBe(200)
      for (let i = 0; i < 900 && (await get(served.url, at(951))).status === 200; i++);
      expect((await get(served.url, at(952))).status).toBe(429)
      // logrotate: rename, create, SIGHUP.
      renameSync(path, `${path}.1`)
      process.kill(process.pid, 'SIGHUP')
      await vi.waitFor(() => { expect(existsSync(path)).toBe(true) }, { timeout: 5000, interval: 10 })
      expect((await get(served.url, at(953))).status).toBe(200)
    } finally {
      await served.app.close()
    }
    // A share too small to hold ~70 reads' entries is refused at start, one coded line.
    await expect(serveApi(store, { ...api(join(dir, 'small.log')), keys: two, auditLogMaxBytes: 65_536, auditKeyShare: 0.2 }, base, {})).rejects.toMatchObject({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringContaining('api.auditKeyShare') })
    // One key alone: the whole bound is its own (nobody else to keep room for).
    const alone = openAuditLog(join(dir, 'alone.log'), 65_536)
    try {
      const entry: AuditRow = { batch: 'b', row: 1, address: '192.0.2.10', at: 'x'.repeat(900), answer: 'held' }
      for (let i = 0; i < 60; i++) alone.write(entry, 'reader')
      expect(() => { alone.admit('reader', 1024) }).not.toThrow()
    } finally { alone.close() }
  }, 30_000)
})

describe('security: a key\'s requests cannot charge their audit lines to another key', () => {
  it('parameters named key and batch (in the URL, refused 400, still recorded): the sender is charged, also when the file is read back after a restart; the key they name reads on', async () => {
    const OTHER = 'kt_test-audit-other-0123456789'
    const two = [...keys, { name: 'other', sha256: apiKeyHash(OTHER) }]
    const path = join(mkdtempSync(join(base, 'share-forged-')), 'audit.log')
    const cfg = { ...api(path), keys: two, auditLogMaxBytes: 65_536 }
    const byOther = async (url: string): Promise<number> => (await fetch(`${url}${at(1)}`, { headers: { authorization: `Bearer ${OTHER}` } })).status
    const first = await serveApi(store, cfg, base, {})
    try {
      // The entry records its parameters raw: `"query":{…,"key":"other","batch":"Q",…}`.
      const forged = (i: number): string => `${at(i)}&key=other&batch=Q&note=${encodeURIComponent('"key":"other"')}`
      const statuses: number[] = []
      for (let i = 0; i < 400 && !statuses.includes(429); i++) statuses.push((await get(first.url, forged(i))).status)
      expect(statuses.filter((s) => s === 400).length).toBeGreaterThan(50)
      expect(statuses.at(-1)).toBe(429)
      expect(await byOther(first.url)).toBe(200)
    } finally {
      await first.app.close()
    }
    // A restart counts the file from its lines: the forged ones are still the sender's.
    const again = await serveApi(store, cfg, base, {})
    try {
      expect((await get(again.url, at(2))).status).toBe(429)
      expect(await byOther(again.url)).toBe(200)
    } finally {
      await again.app.close()
    }
  }, 30_000)
})

describe('security: a batch attribution counts against its key\'s share', () => {
  it('cut off at the first row past the share: the key\'s entry and rows stay within it, every row sent recorded, the refusal counted', async () => {
    const two = [...keys, { name: 'other', sha256: apiKeyHash('kt_test-audit-other-0123456789') }]
    const path = join(mkdtempSync(join(base, 'share-batch-')), 'audit.log')
    const served = await serveApi(store, { ...api(path), keys: two, auditLogMaxBytes: 65_536 }, base, {})
    try {
      const rows = Array.from({ length: 2000 }, (_, i) => ({ address: '192.0.2.10', time: '2026-11-24T18:02:30Z', ticket: `T-${i}` }))
      const r = await attribute(served.url, rows)
      expect(r.status).toBe(200)
      const sent = r.body.split('\n').filter((l) => l.endsWith('}'))
      const text = readFileSync(path, 'utf8')
      const head = entries(path).find(isEntry)
      const mine = text.split('\n').filter((l) => l !== '' && (l.includes('"key":"reader"') || l.includes(`"batch":"${head?.batch ?? '?'}"`)))
      expect(mine.reduce((n, l) => n + l.length + 1, 0)).toBeLessThanOrEqual(32_768)
      expect(mine.length).toBeGreaterThan(100)
      expect(sent.length).toBeGreaterThan(0)
      expect(sent.length).toBeLessThan(rows.length)
      expect(sent.length).toBeLessThanOrEqual(mine.length - 1)
      const metrics = await (await fetch(`${served.url}/metrics`, { headers: auth })).text()
      expect(/^keatrail_audit_quota_refusals_total\{key="reader"\} (\d+)$/m.exec(metrics)?.[1]).toBe('1')
    } finally {
      await served.app.close()
    }
  }, 30_000)
})

describe('security: an audit log whose size cannot be asked', () => {
  it('counts as full on the public /readyz (200, no 500 to anyone asking) and in the gauge', async () => {
    const app = await buildApp({
      store, api: { keys, rateLimit: { max: 100_000, windowMs: 60_000 } },
      audit: () => {},
      auditRoom: () => { throw Object.assign(new Error('EIO: i/o error, fstat'), { code: 'EIO' }) }
    })
    try {
      const r = await app.inject({ url: '/readyz' })
      expect([r.statusCode, r.json().audit]).toEqual([200, 'full'])
      const metrics = await app.inject({ url: '/metrics', headers: auth })
      expect(metrics.body).toMatch(/^keatrail_audit_log_room_bytes 0$/m)
    } finally {
      await app.close()
    }
  })
})

describe('security: api.auditLog must be a regular file', () => {
  /** serveApi's rejection, or 'served' (then closed). */
  async function outcome (path: string): Promise<unknown> {
    try {
      const served = await serveApi(store, api(path), base, {})
      await served.app.close()
      return 'served'
    } catch (err) {
      return { code: (err as { code?: string }).code, message: (err as Error).message }
    }
  }

  it('a character device (as /dev/null), a FIFO, a directory: one coded config error, nothing chmod-ed', async () => {
    const dir = mkdtempSync(join(base, 'kinds-'))
    // The device /dev/null is (1, 3), made here: before, keatrail (root) chmod-ed it 0600, and
    // the real /dev/null stopped working for every other user on the host.
    // (Making a device needs root: elsewhere only the FIFO and the directory are tried.)
    const device = join(dir, 'null')
    if (canMount) {
      execFileSync('mknod', ['-m', '0666', device, 'c', '1', '3'])
      chmodSync(device, 0o666)
    }
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', ['-m', '0644', fifo])
    chmodSync(fifo, 0o644)
    // A reader on the FIFO: without one, the old code's open(2) blocked for ever.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    const directory = join(dir, 'dir')
    mkdirSync(directory, { mode: 0o755 })
    chmodSync(directory, 0o755)
    try {
      const kinds = [[device, 'a character device', 0o666], [fifo, 'a FIFO', 0o644], [directory, 'a directory', 0o755]] as const
      for (const [path, kind, mode] of kinds.filter(([p]) => p !== device || canMount)) {
        expect(await outcome(path)).toEqual({
          code: 'KEATRAIL_ERR_CONFIG_INVALID',
          message: `Invalid configuration at api.auditLog: ${path} is ${kind}: the audit log must be a regular file (keatrail appends to it and keeps it mode 0600); name a file, or leave api.auditLog out for <dataDir>/audit.log`
        })
        expect([path, statSync(path).mode & 0o777]).toEqual([path, mode])
      }
      // The real /dev/null is refused the same way, and left as it is.
      expect(await outcome('/dev/null')).toMatchObject({ code: 'KEATRAIL_ERR_CONFIG_INVALID' })
      expect(statSync('/dev/null').mode & 0o777).toBe(0o666)
    } finally {
      closeSync(reader)
    }
  })

  it('keatrail serve: one coded line, exit 2 (before: KEATRAIL_ERR_API_LISTEN … EISDIR)', async () => {
    const data = mkdtempSync(join(base, 'serve-'))
    expect((await runCli(['import', '--data-dir', data, '--tz', 'UTC', join('test', 'fixtures', 'kea', 'kea-2.2.0-dhcp4-INFO-full.log')])).code).toBe(0)
    const config = join(data, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${data}\napi: { port: 0, auditLog: ${data} }\n`)
    const r = await runCli(['serve', '--config', config])
    expect(r.code).toBe(2)
    expect(r.err).toBe(`keatrail: KEATRAIL_ERR_CONFIG_INVALID: Invalid configuration at api.auditLog: ${data} is a directory: the audit log must be a regular file (keatrail appends to it and keeps it mode 0600); name a file, or leave api.auditLog out for <dataDir>/audit.log\n`)
  }, 30_000)
})

describe('security: a batch attribution\'s audit lines are compact', () => {
  /** Bytes of audit log per row of one batch of `rows`, and its lines. */
  async function perRow (rows: Array<Record<string, string>>): Promise<{ bytes: number, audit: AuditRecord[] }> {
    const path = join(mkdtempSync(join(base, 'compact-')), 'audit.log')
    const served = await serveApi(store, api(path), base, {})
    try {
      const r = await attribute(served.url, rows)
      expect(r.status).toBe(200)
      expect(r.body.trim().split('\n')).toHaveLength(rows.length)
    } finally {
      await served.app.close()
    }
    return { bytes: statSync(path).size / rows.length, audit: entries(path) }
  }

  it('one entry with who asked, then per row its batch id, number, address, time and answer: ~105 bytes a row (before: 240; at the longest inputs 203, before 338)', async () => {
    const typical = Array.from({ length: 2000 }, (_, i) => ({ address: `192.0.2.${1 + (i % 200)}`, time: '2026-11-24T18:02:30Z', ticket: `T-${i}` }))
    const { bytes, audit } = await perRow(typical)
    const [head, ...rows] = audit
    expect(head).toMatchObject({ key: 'reader', ip: '127.0.0.1', method: 'POST', route: '/api/v1/leases/attribute', query: { rows: 2000 }, status: 200 })
    const batch = (head as AuditEntry).batch
    expect(rows).toHaveLength(2000)
    expect(rows[9]).toEqual({ batch, row: 10, address: '192.0.2.10', at: '2026-11-24T18:02:30Z', answer: 'held' })
    expect(rows.every((r, i) => 'row' in r && r.batch === batch && r.row === i + 1 && r.address === typical[i]?.address)).toBe(true)
    expect(bytes).toBeLessThan(110)
    // The longest a row may be (64-character address and time, as the auditor sent): bounded too.
    const longest = Array.from({ length: 2000 }, () => ({ address: 'A'.repeat(64), time: 'T'.repeat(64) }))
    expect((await perRow(longest)).bytes).toBeLessThan(210)
  }, 60_000)
})
