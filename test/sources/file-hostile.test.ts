import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, symlinkSync, truncateSync, writeFileSync, appendFileSync, statSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { FileSource } from '../../src/sources/file/source.js'
import { readFixture } from '../helpers/fixtures.js'

// What a log directory can hold that a collector must survive without stalling, running out of
// memory or losing what it read uncounted (the hardening audit of session 19: each test failed
// or hung on the code before).

const INFO = readFixture('kea-2.2.0-dhcp4-INFO-full.log').toString()
const INFO_LINES = INFO.split('\n').filter((l) => l !== '')

interface Followed { source: FileSource, batches: KeaEvent[][], errors: Array<{ code: string, msg: string }>, stop: () => Promise<void> }

/** Runs a file source on its own, each batch acknowledged as soon as it is handed over. */
function follow (dir: string, include: string[], extra: Record<string, unknown> = {}): Followed {
  const batches: KeaEvent[][] = []
  const errors: Array<{ code: string, msg: string }> = []
  const log = { info: () => {}, error: (code: string, msg: string) => { errors.push({ code, msg }) } }
  // No idle flush during a test unless it asks: what is held stays held until the test acts.
  const source = new FileSource({ type: 'file', name: 'k', include, timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 600_000, ...extra }, join(dir, 'state'), log)
  const ctl = new AbortController()
  const running = source.run(async (b) => { batches.push(b.events); b.ack() }, ctl.signal)
  return { source, batches, errors, stop: async () => { ctl.abort(); await running; source.checkpoint() } }
}

const events = (f: Followed): KeaEvent[] => f.batches.flat()

/** Writes the INFO capture to dir/kea.log and follows it until read (checkpoint saved); its path. */
async function readOnce (dir: string): Promise<string> {
  const log = join(dir, 'kea.log')
  writeFileSync(log, INFO)
  const first = follow(dir, [log])
  await vi.waitFor(() => expect(events(first)).toHaveLength(INFO_LINES.length - 1), { timeout: 10_000 })
  await first.stop()
  return log
}

describe('file source: what a log directory can hold', () => {
  it('skips a FIFO and a symlink to one (opening it blocked the whole process), and reads the other files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    writeFileSync(join(dir, 'kea.log'), INFO)
    execFileSync('mkfifo', [join(dir, 'kea.log.2')])
    symlinkSync(join(dir, 'kea.log.2'), join(dir, 'kea.log.3'))
    const f = follow(dir, [join(dir, 'kea.log*')])
    try {
      await vi.waitFor(() => expect(events(f)).toHaveLength(INFO_LINES.length - 1), { timeout: 10_000 })
      expect(f.errors.filter((e) => e.msg.includes('not a regular file'))).toHaveLength(2)
      expect(f.source.counters.errors).toBe(2)
    } finally {
      await f.stop()
    }
  })

  it('hands batches over by bytes as well as by events: long lines do not pile up in one batch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    const log = join(dir, 'kea.log')
    // 24 records of ~512 KiB: one batch of them all was 12 MiB (5,000 such events, ~2.5 GB).
    const pad = ' ' + 'x'.repeat(512 * 1024)
    writeFileSync(log, INFO_LINES.slice(0, 24).map((l) => l + pad).join('\n') + '\n')
    const f = follow(dir, [log])
    try {
      // The last record stays open until another starts or the idle flush.
      await vi.waitFor(() => expect(events(f)).toHaveLength(23), { timeout: 10_000 })
      const sizes = f.batches.map((b) => b.reduce((n, e) => n + e.event.original.length, 0))
      // The default bound (4 MiB), overshot by at most the record that crossed it.
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4 * 1024 * 1024 + pad.length + 1024)
      expect(f.batches.length).toBeGreaterThan(1)
    } finally {
      await f.stop()
    }
  })

  it('lets the event loop run while it reads text that makes no events (a run of NULs)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    const log = join(dir, 'kea.log')
    writeFileSync(log, INFO_LINES[0] + '\n')
    appendFileSync(log, Buffer.alloc(16 * 1024 * 1024))
    appendFileSync(log, '\n' + (INFO_LINES[1] as string) + '\n')
    const size = readFileSync(log).length
    // What the event loop saw of the read: the bytes received each time it ran a callback.
    const seen: number[] = []
    let sampling = true
    const f = follow(dir, [log])
    const sample = (): void => { seen.push(f.source.counters.received); if (sampling) setImmediate(sample) }
    setImmediate(sample)
    try {
      await vi.waitFor(() => expect(f.source.counters.received).toBe(size), { timeout: 10_000 })
      sampling = false
      // Before, the 16 MiB were read in one synchronous loop: no callback ran in between.
      expect(seen.filter((n) => n > INFO_LINES[0]!.length + 1 && n < size).length).toBeGreaterThan(4)
    } finally {
      sampling = false
      await f.stop()
    }
  })

  it('reads a file again whose checkpoint entry is malformed (it stopped the source for good), and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    const log = await readOnce(dir)
    const cpPath = join(dir, 'state', 'file-k.json')
    const saved = JSON.parse(readFileSync(cpPath, 'utf8')) as Record<string, unknown>
    writeFileSync(cpPath, JSON.stringify(Object.fromEntries(Object.keys(saved).map((k) => [k, null]))))
    const again = follow(dir, [log])
    try {
      await vi.waitFor(() => expect(events(again)).toHaveLength(INFO_LINES.length - 1), { timeout: 10_000 })
      expect(again.errors.map((e) => e.code)).toContain('KEATRAIL_ERR_CHECKPOINT_CORRUPT')
    } finally {
      await again.stop()
    }
  })

  it('reads a file shorter than its checkpoint from the beginning, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    const log = await readOnce(dir)
    // Rewritten while keatrail was down, with the same first line (so the same identity).
    writeFileSync(log, INFO_LINES.slice(0, 3).join('\n') + '\n')
    const again = follow(dir, [log])
    try {
      await vi.waitFor(() => expect(events(again)).toHaveLength(2), { timeout: 10_000 })
      expect(again.errors.map((e) => e.code)).toContain('KEATRAIL_ERR_SOURCE_TRUNCATED')
    } finally {
      await again.stop()
    }
  })

  it('hands over what it held of a file truncated in place (copytruncate) before following the new content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    const log = join(dir, 'kea.log')
    // The last line has no newline yet: held until the idle flush (10 minutes here).
    const held = INFO_LINES[5] as string
    writeFileSync(log, INFO_LINES.slice(0, 5).join('\n') + '\n' + held)
    const f = follow(dir, [log])
    try {
      await vi.waitFor(() => expect(f.source.counters.received).toBe(readFileSync(log).length), { timeout: 10_000 })
      expect(events(f).map((e) => e.event.original)).not.toContain(held)
      truncateSync(log, 0)
      writeFileSync(log, INFO_LINES.slice(10, 12).join('\n') + '\n')
      await vi.waitFor(() => expect(events(f).map((e) => e.event.original)).toEqual(expect.arrayContaining([INFO_LINES[4], held, INFO_LINES[10]])), { timeout: 10_000 })
      expect(f.errors.map((e) => e.code)).toContain('KEATRAIL_ERR_SOURCE_TRUNCATED')
    } finally {
      await f.stop()
    }
  })

  it('a file whose reads fail (EIO) is opened again later; the event loop and the other files go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-fh-'))
    writeFileSync(join(dir, 'kea.log'), INFO)
    writeFileSync(join(dir, 'kea.log.1'), INFO_LINES.slice(50, 90).join('\n') + '\n')
    const bad = statSync(join(dir, 'kea.log.1')).ino
    // A disk that fails every read of one file: the source's readSync (an ESM import of node:fs)
    // is the one patched here, through node:fs's CommonJS object.
    const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs')
    const readSync = fs.readSync
    let failures = 0
    let headReads = 0
    // `heads`: whether the reads of its head (its identity, ≤ 1 KiB) fail too.
    let heads = false
    fs.readSync = ((fd: number, buffer: Uint8Array, ...rest: unknown[]) => {
      if (fs.fstatSync(fd).ino === bad) {
        const head = buffer.length <= 1024
        if (head) headReads++
        if (!head || heads) { failures++; throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }) }
      }
      return (readSync as (...a: unknown[]) => number)(fd, buffer, ...rest)
    }) as typeof fs.readSync
    syncBuiltinESMExports()
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 10)
    const f = follow(dir, [join(dir, 'kea.log*')])
    try {
      // Before, the failing file was opened and read again at once, for ever: no timer ran again.
      await vi.waitFor(() => expect(events(f)).toHaveLength(INFO_LINES.length - 1), { timeout: 10_000 })
      await vi.waitFor(() => expect(failures).toBeGreaterThanOrEqual(2), { timeout: 10_000 })
      expect(ticks).toBeGreaterThan(5)
      // A try a second: not a storm.
      expect(failures).toBeLessThan(10)
      expect(headReads).toBe(failures)
      // Its head cannot be read either: the same (before, the source stopped for good).
      heads = true
      const failed = failures
      await vi.waitFor(() => expect(failures).toBeGreaterThanOrEqual(failed + 2), { timeout: 10_000 })
      expect(failures).toBeLessThan(failed + 10)
      expect(f.errors.filter((e) => e.msg.startsWith('Cannot read'))).toHaveLength(1)
      // The disk heals: the file is read from its checkpoint.
      heads = false
      fs.readSync = readSync
      syncBuiltinESMExports()
      await vi.waitFor(() => expect(events(f)).toHaveLength(INFO_LINES.length - 1 + 39), { timeout: 10_000 })
    } finally {
      clearInterval(timer)
      fs.readSync = readSync
      syncBuiltinESMExports()
      await f.stop()
    }
  })
})
