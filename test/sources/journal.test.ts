import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { JournalSource } from '../../src/sources/journal/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// Real journal files: systemd-journal-remote turns export-format entries into journal files,
// journalctl reads them, the journal source follows journalctl.

const REMOTE = '/lib/systemd/systemd-journal-remote'
const unavailable = !existsSync(REMOTE) ? 'systemd-journal-remote is not installed (apt-get install systemd-journal-remote)' : ''
const quiet = { info: () => {}, error: () => {} }

function exportEntry (i: number, message: Buffer | string): Buffer {
  const head = `__REALTIME_TIMESTAMP=${1795512161000000 + i * 1000}\n__MONOTONIC_TIMESTAMP=${1000000 + i}\n` +
    '_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=kea-a\n_PID=4242\nSYSLOG_IDENTIFIER=kea-dhcp4\n'
  if (typeof message === 'string' && !message.includes('\n')) return Buffer.from(`${head}MESSAGE=${message}\n\n`)
  const body = Buffer.from(message)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(body.length))
  return Buffer.concat([Buffer.from(`${head}MESSAGE\n`), len, body, Buffer.from('\n\n')])
}

function lease (i: number): string {
  return `INFO  DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:01:${(i & 255).toString(16).padStart(2, '0')}], cid=[no info], tid=0x${i.toString(16)}: lease 192.0.2.${i & 255} has been allocated for 40 seconds`
}

function appendToJournal (dir: string, from: number, to: number, extra: Buffer[] = []): void {
  const file = join(dir, `in-${from}.export`)
  const entries: Buffer[] = []
  for (let i = from; i < to; i++) entries.push(exportEntry(i, lease(i)))
  writeFileSync(file, Buffer.concat([...entries, ...extra]))
  execFileSync(REMOTE, [`--output=${join(dir, 'journal', 'remote.journal')}`, file], { stdio: 'ignore' })
}

const until = async (cond: () => Promise<boolean>, ms = 15_000, debug?: () => Promise<string>): Promise<void> => {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out${debug === undefined ? '' : ': ' + await debug()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`journal source on real journal files${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
  it('reads, resumes after a restart without loss or duplicates, and follows new entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
    execFileSync('mkdir', ['-p', join(dir, 'journal')])
    const nonUtf8 = Buffer.concat([Buffer.from('WARN  DHCP4_ODD bytes '), Buffer.from([0xff, 0xfe]), Buffer.from(' here')])
    const multiLine = 'DEBUG DHCP6_LEASE_DATA duid=[00:03:00:01:02:00:00:00:06:0a], tid=0x1: detailed lease information for iaid=10: Type:          IA_NA(0)\nAddress:       2001:db8:1::100\nValid life:    40\n'
    appendToJournal(dir, 0, 40, [exportEntry(40, nonUtf8), exportEntry(41, multiLine)])
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const cfg = { type: 'journal' as const, name: 'j', directory: join(dir, 'journal'), flushMs: 20 }

    // First run: everything so far, then stop.
    let source = new JournalSource(cfg, join(dir, 'state'), quiet)
    let pipeline = new Pipeline(store, { log: quiet })
    let stop = new AbortController()
    let running = pipeline.run([source], stop.signal)
    await until(async () => await store.count() === 42, 15_000, async () => `${await store.count()} stored, ${JSON.stringify(source.counters)} ${JSON.stringify(pipeline.counters)}`)
    stop.abort()
    await running

    const odd = (await store.search({ filters: { code: ['DHCP4_ODD'] } })).events[0]!
    expect(Buffer.from(odd.kea.parse.raw_base64!, 'base64')).toEqual(nonUtf8)
    expect(odd).toMatchObject({ host: { name: 'kea-a' }, process: { pid: 4242 }, log: { level: 'warn' } })
    const dump = (await store.search({ filters: { code: ['DHCP6_LEASE_DATA'] } })).events[0]!
    expect(dump.kea).toMatchObject({ iaid: 10, lease: { address: '2001:db8:1::100', lifetime: 40 } })
    const first = (await store.search({ sort: 'asc', size: 1 })).events[0]!
    expect(first['@timestamp']).toBe('2026-11-24T09:22:41.000Z')
    expect(first.event.action).toBe('allocate')

    // Entries written while keatrail was down, then a restart: it resumes at its cursor.
    appendToJournal(dir, 100, 130)
    source = new JournalSource(cfg, join(dir, 'state'), quiet)
    pipeline = new Pipeline(store, { log: quiet })
    stop = new AbortController()
    running = pipeline.run([source], stop.signal)
    await until(async () => await store.count() === 72, 15_000, async () => `${await store.count()} stored, ${JSON.stringify(source.counters)} ${JSON.stringify(pipeline.counters)}`)
    expect(pipeline.counters.duplicates).toBe(0)

    // Appended while it follows.
    appendToJournal(dir, 200, 220)
    await until(async () => await store.count() === 92, 15_000, async () => `${await store.count()} stored, ${JSON.stringify(source.counters)} ${JSON.stringify(pipeline.counters)}`)
    stop.abort()
    await running
    expect(pipeline.counters.duplicates).toBe(0)
    await store.close()
  }, 60_000)

})

describe('journal source without a journal', () => {
  it('reports journalctl failing once running and keeps retrying instead of crashing', async () => {
    // (journalctl missing altogether fails start-up instead: test/pipeline/startup.test.ts)
    const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
    const journalctl = join(dir, 'journalctl')
    writeFileSync(journalctl, '#!/bin/sh\n[ "$1" = --version ] && exit 0\necho "No journal files were found." >&2\nexit 1\n', { mode: 0o755 })
    const errors: string[] = []
    const source = new JournalSource({ type: 'journal', name: 'x', journalctl, restartMs: { initial: 20, max: 40 } },
      dir, { info: () => {}, error: (code) => errors.push(code) })
    const stop = new AbortController()
    const run = source.run(async () => {}, stop.signal)
    await vi.waitFor(() => { expect(errors.length).toBeGreaterThan(1) })
    stop.abort()
    await run
    expect(new Set(errors)).toEqual(new Set(['KEATRAIL_ERR_SOURCE']))
    expect(source.counters.errors).toBeGreaterThan(1)
  })
})
