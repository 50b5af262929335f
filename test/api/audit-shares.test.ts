import { appendFileSync, closeSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { AuditEntry, AuditRow } from '../../src/api/app.js'
import { AuditShares } from '../../src/api/audit-shares.js'
import { openAuditLog } from '../../src/api/serve.js'

// A key's share of the audit log is counted from the file: `keatrail serve` beside `keatrail
// run` append to one file, each process must see the other's lines (the review found one key
// filling 63,954 of 65,536 bytes through two processes with a share of 0.5 each).

const base = mkdtempSync(join(tmpdir(), 'kt-audit-shares-'))
afterAll(() => { rmSync(base, { recursive: true, force: true }) })

let n = 0
const fresh = (): string => join(base, `audit-${n++}.log`)
const entry = (key: string, batch?: string): AuditEntry => ({ time: '2026-12-07T21:00:00.000Z', key, ip: '127.0.0.1', method: 'GET', route: '/api/v1/leases/at', params: {}, query: { address: '192.0.2.10', time: 'x'.repeat(200) }, status: 200, ...(batch === undefined ? {} : { batch }) })
const row = (batch: string, i: number): AuditRow => ({ batch, row: i, address: '192.0.2.10', at: 'y'.repeat(200), answer: 'held' })
/** Bytes of the file's lines that name `key`. */
const bytesOf = (path: string, key: string): number => readFileSync(path, 'utf8').split('\n').filter((l) => l.includes(`"key":"${key}"`)).reduce((s, l) => s + l.length + 1, 0)
const quotaOf = (f: () => void): string | undefined => {
  try { f(); return undefined } catch (err) { return (err as { code?: string }).code }
}
/** Runs `f` with a new empty file, its fd (read only) and an AuditShares that has looked at it once. */
function counting (f: (path: string, shares: AuditShares, fd: number) => void): void {
  const path = fresh()
  appendFileSync(path, '')
  const shares = new AuditShares()
  const fd = openSync(path, 'r')
  try {
    shares.sync(fd)
    f(path, shares, fd)
  } finally { closeSync(fd) }
}

describe('the audit log\'s key shares (AuditShares)', () => {
  it('two processes on one file: a key\'s lines through both count against one share; the other key writes on', () => {
    const path = fresh()
    const a = openAuditLog(path, 65_536, 0.5)
    const b = openAuditLog(path, 65_536, 0.5)
    try {
      let refused: string | undefined
      for (let i = 0; i < 1000 && refused === undefined; i++) refused = quotaOf(() => { (i % 2 === 0 ? a : b).write(entry('k'), 'k') })
      expect(refused).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(bytesOf(path, 'k')).toBeLessThanOrEqual(32_768)
      expect(bytesOf(path, 'k')).toBeGreaterThan(32_768 - 400)
      expect(quotaOf(() => { a.admit('k', 1024) })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(quotaOf(() => { b.admit('k', 1024) })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(quotaOf(() => { b.write(entry('other'), 'other') })).toBeUndefined()
      // A SIGHUP that rotated nothing (a reload, another log's postrotate): the counts stand.
      a.reopen()
      expect(quotaOf(() => { a.write(entry('k'), 'k') })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      // Rotated (rename, then the reopen): a new file, counted from its start.
      renameSync(path, `${path}.1`)
      a.reopen()
      b.reopen()
      expect(quotaOf(() => { a.write(entry('k'), 'k') })).toBeUndefined()
    } finally { a.close(); b.close() }
  })

  it('a batch\'s rows count against its entry\'s key, whoever wrote them', () => {
    const path = fresh()
    const a = openAuditLog(path, 65_536, 0.5)
    const b = openAuditLog(path, 65_536, 0.5)
    try {
      a.write(entry('k', 'B1'), 'k')
      let refused: string | undefined
      for (let i = 1; i < 1000 && refused === undefined; i++) refused = quotaOf(() => { b.write(row('B1', i), 'k') })
      expect(refused).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(quotaOf(() => { a.admit('k', 1024) })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(quotaOf(() => { a.admit('other', 1024) })).toBeUndefined()
    } finally { a.close(); b.close() }
    // What the file held when a process opened it counts too: a restart gives no key a fresh
    // share (before: charged to nobody, the key read on).
    const c = openAuditLog(path, 65_536, 0.5)
    try {
      expect(quotaOf(() => { c.admit('k', 1024) })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(quotaOf(() => { c.admit('other', 1024) })).toBeUndefined()
    } finally { c.close() }
  })

  it('a copytruncate is seen even when the file grew past the counted size again before the next look', () => {
    const path = fresh()
    const a = openAuditLog(path, 65_536, 0.5)
    try {
      let refused: string | undefined
      for (let i = 0; i < 1000 && refused === undefined; i++) refused = quotaOf(() => { a.write(entry('k'), 'k') })
      expect(refused).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      truncateSync(path, 0)
      // Another process writes more than was counted, before this one looks again.
      for (let i = 0; i < 150; i++) appendFileSync(path, `${JSON.stringify(entry('other'))}\n`)
      expect(quotaOf(() => { a.write(entry('k'), 'k') })).toBeUndefined()
    } finally { a.close() }
  })

  it('a line being written is counted once whole; a line longer than a read step (not an entry) is skipped, the lines after it counted; many steps of lines at one look', () => {
    counting((path, shares, fd) => {
      const line = `${JSON.stringify(entry('k'))}\n`
      appendFileSync(path, line.slice(0, 100))
      shares.sync(fd)
      expect(shares.used('k')).toBe(0)
      appendFileSync(path, line.slice(100))
      shares.sync(fd)
      expect(shares.used('k')).toBe(line.length)
      // Its last read step starts with what looks like an entry: still one line, skipped whole.
      appendFileSync(path, `${'z'.repeat(2 << 20)}${line}${line}`)
      shares.sync(fd)
      shares.sync(fd)
      expect(shares.used('k')).toBe(2 * line.length)
      // More than a read step of lines at once: all counted in one look.
      appendFileSync(path, line.repeat(5000))
      shares.sync(fd)
      expect(shares.used('k')).toBe(5002 * line.length)
    })
  })

  it('a batch rotated in the middle: its rows in the new file still count against its key', () => {
    const path = fresh()
    const a = openAuditLog(path, 65_536, 0.5)
    try {
      a.write(entry('k', 'B1'), 'k')
      for (let i = 1; i <= 20; i++) a.write(row('B1', i), 'k')
      renameSync(path, `${path}.1`)
      a.reopen()
      let refused: string | undefined
      for (let i = 21; i < 2000 && refused === undefined; i++) refused = quotaOf(() => { a.write(row('B1', i), 'k') })
      expect(refused).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
      expect(readFileSync(path).length).toBeLessThanOrEqual(32_768)
      // Rows another process wrote into the new file: counted from the file.
      renameSync(path, `${path}.2`)
      a.reopen()
      const b = openAuditLog(path, 65_536, 1)
      try { for (let i = 0; i < 200; i++) b.write(row('B1', 3000 + i), 'k') } finally { b.close() }
      expect(readFileSync(path).length).toBeGreaterThan(32_768)
      expect(quotaOf(() => { a.admit('k', 1024) })).toBe('KEATRAIL_ERR_AUDIT_QUOTA')
    } finally { a.close() }
  })

  it('a running batch is not forgotten however many others start meanwhile; a client\'s parameter named batch maps nothing; an escaped key name is read whole', () => {
    counting((path, shares, fd) => {
      const rowLine = `${JSON.stringify(row('B1', 1))}\n`
      const lines = [`${JSON.stringify(entry('k', 'B1'))}\n`]
      for (let i = 0; i < 12_000; i++) {
        lines.push(`${JSON.stringify(entry('other', `O${i}`))}\n`)
        if (i % 100 === 0) lines.push(rowLine)
      }
      appendFileSync(path, lines.join(''))
      for (let i = 0; i < 3; i++) shares.sync(fd)
      const entryBytes = Buffer.byteLength(lines[0] as string)
      expect(shares.used('k')).toBe(entryBytes + 120 * rowLine.length)
      // 12,000 more batches start, none with a row; then a row of the newest, then B1's again.
      appendFileSync(path, Array.from({ length: 12_000 }, (_, i) => `${JSON.stringify(entry('other', `P${i}`))}\n`).join('') + `${JSON.stringify(row('P11999', 1))}\n${rowLine}`)
      for (let i = 0; i < 3; i++) shares.sync(fd)
      expect(shares.used('k')).toBe(entryBytes + 121 * rowLine.length)
      // Two keys' batches running at once (two processes), 12,000 one-row batches of a third
      // meanwhile: both still counted.
      const line = (r: AuditRow | AuditEntry): string => `${JSON.stringify(r)}\n`
      const others = Array.from({ length: 12_000 }, (_, i) => line(entry('other', `Q${i}`)) + line(row(`Q${i}`, 1)) + (i % 100 === 0 ? line(row('C1', 9)) + line(row('C2', 9)) : ''))
      appendFileSync(path, line(entry('k1', 'C1')) + line(entry('k2', 'C2')) + others.join(''))
      for (let i = 0; i < 5; i++) shares.sync(fd)
      expect([shares.used('k1'), shares.used('k2')]).toEqual([1, 2].map((k) => line(entry(`k${k}`, `C${k}`)).length + 120 * line(row(`C${k}`, 9)).length))
      // An entry naming the last row's batch id anew (another key's): its rows are that key's.
      appendFileSync(path, line(row('C1', 10)) + line(entry('k3', 'C1')) + line(row('C1', 4)))
      shares.sync(fd)
      expect(shares.used('k3')).toBe(line(entry('k3', 'C1')).length + line(row('C1', 4)).length)
      // A read whose query has a parameter named batch: its rows are nobody's.
      const sneaky: AuditEntry = { ...entry('mallory'), query: { a: '1', batch: 'B2' } }
      const quoted: AuditEntry = { ...entry('we "quote"\\s') }
      appendFileSync(path, `${JSON.stringify(sneaky)}\n${JSON.stringify(row('B2', 1))}\n${JSON.stringify(quoted)}\n`)
      shares.sync(fd)
      expect(shares.used('mallory')).toBe(JSON.stringify(sneaky).length + 1)
      expect(shares.used('we "quote"\\s')).toBe(Buffer.byteLength(JSON.stringify(quoted)) + 1)
    })
  })

  it('a process far behind catches up at most 2 MiB a look, not all at once', () => {
    counting((path, shares, fd) => {
      const line = `${JSON.stringify(entry('k'))}\n`
      const count = Math.ceil((5 << 20) / line.length)
      appendFileSync(path, line.repeat(count))
      shares.sync(fd)
      expect(shares.used('k')).toBeGreaterThan(1.9 * (1 << 20))
      expect(shares.used('k')).toBeLessThanOrEqual(2 << 20)
      shares.sync(fd)
      shares.sync(fd)
      expect(shares.used('k')).toBe(count * line.length)
    })
  })
})
