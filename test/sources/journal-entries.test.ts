import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { JournalSource, type JournalSourceConfig } from '../../src/sources/journal/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// What one journal entry can turn into: several events (each stored), a MESSAGE over the size
// bound (cut, marked, counted), a MESSAGE that occurs more than once, and a saved cursor that
// journalctl refuses. Real journal files as in journal.test.ts: systemd-journal-remote writes
// them from export-format entries, journalctl reads them.

const REMOTE = '/lib/systemd/systemd-journal-remote'
const unavailable = !existsSync(REMOTE) ? 'systemd-journal-remote is not installed (apt-get install systemd-journal-remote)' : ''
const skip = unavailable !== '' && process.env.CI !== 'true'
const quiet = { info: () => {}, error: () => {} }
const MiB = 1024 * 1024

/** One export-format field: binary form (length-prefixed) unless it is short printable ASCII. */
function field (name: string, value: Buffer | string): Buffer {
  if (typeof value === 'string' && value.length < 1000 && /^[\x20-\x7e]*$/.test(value)) return Buffer.from(`${name}=${value}\n`)
  const body = Buffer.from(value)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(body.length))
  return Buffer.concat([Buffer.from(`${name}\n`), len, body, Buffer.from('\n')])
}

/** An entry with MESSAGE given once per value (twice: journalctl prints an array of values). */
function entry (i: number, ...messages: Array<Buffer | string>): Buffer {
  const head = `__REALTIME_TIMESTAMP=${1795512161000000 + i * 1000}\n__MONOTONIC_TIMESTAMP=${1000000 + i}\n` +
    '_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=kea-a\n_PID=4242\nSYSLOG_IDENTIFIER=kea-dhcp4\n'
  return Buffer.concat([Buffer.from(head), ...messages.map((m) => field('MESSAGE', m)), Buffer.from('\n')])
}

function journalWith (entries: Buffer[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
  mkdirSync(join(dir, 'journal'))
  writeFileSync(join(dir, 'in.export'), Buffer.concat(entries))
  execFileSync(REMOTE, [`--output=${join(dir, 'journal', 'remote.journal')}`, join(dir, 'in.export')], { stdio: 'ignore' })
  return dir
}

/** The cursors of a journal's entries, in order, as journalctl names them. */
function cursors (dir: string): string[] {
  const out = execFileSync('journalctl', [`--directory=${join(dir, 'journal')}`, '--output=json', '--output-fields=_PID', '--no-pager'], { encoding: 'utf8' })
  return out.trim().split('\n').map((l) => (JSON.parse(l) as { __CURSOR: string }).__CURSOR)
}

/** The id today's source gives the first event of an entry (ids already stored must still match). */
function firstEventId (dir: string, cursor: string): string {
  const prefix = createHash('sha256').update(`journal\0${join(dir, 'journal')}\0`).digest('hex').slice(0, 12)
  return `${prefix}-${createHash('sha1').update(cursor).digest('hex').slice(0, 20)}`
}

interface Run { source: JournalSource, pipeline: Pipeline, errors: string[], stop: () => Promise<void> }

function start (cfg: JournalSourceConfig, stateDir: string, store: SqliteStore): Run {
  const errors: string[] = []
  const log = { info: () => {}, error: (code: string) => { errors.push(code) } }
  const source = new JournalSource(cfg, stateDir, log)
  const pipeline = new Pipeline(store, { log: quiet })
  const ctl = new AbortController()
  const running = pipeline.run([source], ctl.signal)
  return { source, pipeline, errors, stop: async () => { ctl.abort(); await running } }
}

async function all (store: SqliteStore): Promise<KeaEvent[]> {
  return (await store.search({ sort: 'asc', size: 100 })).events
}

describe.skipIf(skip)(`journal entries${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
  it('stores every event of an entry that makes several, each with its own id, and a re-read stores none twice', async () => {
    const continuation = Array.from({ length: 5001 }, (_, i) => `line ${i}`).join('\n')
    const dir = journalWith([
      entry(0, 'INFO  DHCP4_A first record\nWARN  DHCP4_B second record'),
      // Header + 5001 lines: the record closes at its 5000-line bound, the 2 lines past it are events of their own.
      entry(1, `DEBUG DHCP4_LONG a long dump\n${continuation}`),
      entry(2, 'INFO  DHCP4_C alone')
    ])
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const cfg = { type: 'journal' as const, name: 'j', directory: join(dir, 'journal'), flushMs: 20 }
    let run = start(cfg, join(dir, 'state'), store)
    await vi.waitFor(async () => { expect(await store.count()).toBe(6) }, { timeout: 15_000, interval: 50 })
    await run.stop()
    expect(run.pipeline.counters.duplicates).toBe(0)

    const events = await all(store)
    const ids = events.map((e) => e.event.id)
    expect(new Set(ids).size).toBe(6)
    // The first event of each entry keeps the id it always had; the k-th gets "-k".
    const [c0, c1, c2] = cursors(dir) as [string, string, string]
    expect(ids).toEqual(expect.arrayContaining([firstEventId(dir, c0), `${firstEventId(dir, c0)}-1`,
      firstEventId(dir, c1), `${firstEventId(dir, c1)}-1`, `${firstEventId(dir, c1)}-2`, firstEventId(dir, c2)]))
    expect(events.map((e) => e.event.code)).toEqual(expect.arrayContaining(['DHCP4_A', 'DHCP4_B', 'DHCP4_LONG', 'DHCP4_C']))

    // Without its cursor (a lost state directory) the journal is read again: the same ids, nothing new.
    run = start(cfg, join(dir, 'state-lost'), store)
    await vi.waitFor(() => { expect(run.pipeline.counters.duplicates).toBe(6) }, { timeout: 15_000, interval: 50 })
    await run.stop()
    expect(await store.count()).toBe(6)
    await store.close()
  }, 60_000)

  it('cuts a MESSAGE at maxLineBytes (the file source\'s default), marks and counts it, also one whose JSON line is over journalctl\'s bound', async () => {
    const text = 'INFO  DHCP4_BIG ' + 'a'.repeat(1.5 * MiB)
    // Not UTF-8: journalctl prints it as an array of byte numbers, ~4 characters a byte: a JSON line over 4 MiB.
    const bin = Buffer.alloc(1.2 * MiB)
    for (let i = 0; i < bin.length; i++) bin[i] = 0x80 + (i % 0x80)
    const binary = Buffer.concat([Buffer.from('WARN  DHCP4_BIN '), bin])
    const dir = journalWith([entry(0, text), entry(1, binary), entry(2, 'INFO  DHCP4_AFTER still read')])
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const run = start({ type: 'journal', name: 'j', directory: join(dir, 'journal'), flushMs: 20 }, join(dir, 'state'), store)
    await vi.waitFor(async () => { expect(await store.count()).toBe(3) }, { timeout: 30_000, interval: 50 })
    await run.stop()

    const byCode = new Map((await all(store)).map((e) => [e.event.code, e]))
    const big = byCode.get('DHCP4_BIG')
    expect(big?.kea.parse.truncated).toBe(true)
    // Compared by length and equality, not toBe: a failure must not print megabytes.
    expect(big?.event.original?.length).toBe(MiB)
    expect(big?.event.original === text.slice(0, MiB)).toBe(true)
    const cut = byCode.get('DHCP4_BIN')
    expect(cut?.kea.parse.truncated).toBe(true)
    const raw = Buffer.from(cut?.kea.parse.raw_base64 ?? '', 'base64')
    expect(raw.length).toBe(MiB)
    expect(raw.equals(binary.subarray(0, MiB))).toBe(true)
    expect(byCode.get('DHCP4_AFTER')?.kea.parse.truncated).toBeUndefined()
    // Counted as the file source counts cut lines: in its parser's stats.
    expect(run.source.parseStats.truncated).toBe(2)
    expect(run.errors).toEqual([])
    await store.close()
  }, 60_000)

  it('reads every value of a MESSAGE that occurs more than once: texts, byte arrays, both', async () => {
    const odd = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0xff, 0xfe])])
    const dir = journalWith([
      entry(0, 'INFO  DHCP4_TWO_A first value', 'WARN  DHCP4_TWO_B second value'),
      entry(1, 'INFO  DHCP4_MIX_TEXT text value', odd('WARN  DHCP4_MIX_BIN bytes ')),
      entry(2, odd('INFO  DHCP4_BIN_A bytes '), odd('WARN  DHCP4_BIN_B more bytes ')),
      entry(3, odd('ERROR DHCP4_ONE_BIN one binary value '))
    ])
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const run = start({ type: 'journal', name: 'j', directory: join(dir, 'journal'), flushMs: 20 }, join(dir, 'state'), store)
    await vi.waitFor(async () => { expect(await store.count()).toBe(7) }, { timeout: 15_000, interval: 50 })
    await run.stop()
    const byCode = new Map((await all(store)).map((e) => [e.event.code, e]))
    expect([...byCode.keys()].sort()).toEqual(['DHCP4_BIN_A', 'DHCP4_BIN_B', 'DHCP4_MIX_BIN', 'DHCP4_MIX_TEXT', 'DHCP4_ONE_BIN', 'DHCP4_TWO_A', 'DHCP4_TWO_B'])
    expect(byCode.get('DHCP4_TWO_B')?.event.original).toBe('WARN  DHCP4_TWO_B second value')
    expect(byCode.get('DHCP4_MIX_TEXT')?.kea.parse.raw_base64).toBeUndefined()
    expect(Buffer.from(byCode.get('DHCP4_MIX_BIN')?.kea.parse.raw_base64 ?? '', 'base64')).toEqual(odd('WARN  DHCP4_MIX_BIN bytes '))
    expect(Buffer.from(byCode.get('DHCP4_BIN_B')?.kea.parse.raw_base64 ?? '', 'base64')).toEqual(odd('WARN  DHCP4_BIN_B more bytes '))
    expect(Buffer.from(byCode.get('DHCP4_ONE_BIN')?.kea.parse.raw_base64 ?? '', 'base64')).toEqual(odd('ERROR DHCP4_ONE_BIN one binary value '))
    await store.close()
  }, 60_000)

  it('reads the journal from its oldest entry, once, when journalctl refuses the saved cursor', async () => {
    const dir = journalWith([entry(0, 'INFO  DHCP4_A one'), entry(1, 'INFO  DHCP4_B two'), entry(2, 'INFO  DHCP4_C three')])
    const state = join(dir, 'state')
    mkdirSync(state)
    // A cursor journalctl cannot parse ("Failed to seek to cursor: Invalid argument").
    writeFileSync(join(state, 'journal-j.json'), JSON.stringify({ cursor: 's=not-a-cursor' }))
    const store = new SqliteStore({ path: join(dir, 'k.db') })
    const run = start({ type: 'journal', name: 'j', directory: join(dir, 'journal'), flushMs: 20, restartMs: { initial: 20, max: 40 } }, state, store)
    await vi.waitFor(async () => { expect(await store.count()).toBe(3) }, { timeout: 15_000, interval: 50 })
    await run.stop()
    expect(run.errors).toEqual(['KEATRAIL_ERR_JOURNAL_CURSOR'])
    expect(run.source.counters.errors).toBe(1)
    // The cursor is good again: the next start goes on from the last entry.
    expect(JSON.parse(readFileSync(join(state, 'journal-j.json'), 'utf8'))).toEqual({ cursor: cursors(dir)[2] })
    await store.close()
  }, 60_000)
})

describe('journal entries from a stub journalctl', () => {
  it('keeps the start of a JSON line over its bound, whose cursor came after the cut: marked, counted, a stable id of its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
    // journalctl prints an entry's fields in hash order: the cursor may come after a huge MESSAGE.
    // 5 MiB of text: over the JSON line bound of the default maxLineBytes (4 MiB + 64 KiB).
    const text = 'INFO  DHCP4_CUT ' + 'x'.repeat(5 * MiB)
    const huge = JSON.stringify({ MESSAGE: text, __CURSOR: 'c-1', __REALTIME_TIMESTAMP: '1795512161000000', _PID: '7' })
    const next = JSON.stringify({ __CURSOR: 'c-2', __REALTIME_TIMESTAMP: '1795512161001000', MESSAGE: 'INFO  DHCP4_NEXT after it' })
    writeFileSync(join(dir, 'out.json'), `${huge}\n${next}\n`)
    const journalctl = join(dir, 'journalctl')
    writeFileSync(journalctl, `#!/bin/sh\n[ "$1" = --version ] && exit 0\ncat '${join(dir, 'out.json')}'\nexec sleep 600\n`, { mode: 0o755 })
    const read = async (n: number, maxLineBytes?: number): Promise<{ got: KeaEvent[], source: JournalSource }> => {
      const got: KeaEvent[] = []
      const source = new JournalSource({ type: 'journal', name: 'j', journalctl, flushMs: 20, ...(maxLineBytes === undefined ? {} : { maxLineBytes }) }, join(dir, `state-${n}`), quiet)
      const ctl = new AbortController()
      const running = source.run(async (b) => { got.push(...b.events); b.ack() }, ctl.signal)
      await vi.waitFor(() => { expect(got.length).toBe(2) }, { timeout: 15_000, interval: 50 })
      ctl.abort()
      await running
      return { got, source }
    }
    const ids: string[][] = []
    for (const n of [1, 2]) {
      const { got, source } = await read(n)
      const [cut, after] = got as [KeaEvent, KeaEvent]
      expect(cut.event.code).toBe('DHCP4_CUT')
      expect(cut.event.original?.length).toBe(MiB)
      expect(cut.event.original === text.slice(0, MiB)).toBe(true)
      expect(cut.kea.parse.truncated).toBe(true)
      expect(after.event.code).toBe('DHCP4_NEXT')
      expect(source.parseStats.truncated).toBe(1)
      // The bytes journalctl wrote are counted in full, also those skipped.
      expect(source.counters.received).toBe(Buffer.byteLength(huge) + Buffer.byteLength(next) + 2)
      ids.push(got.map((e) => e.event.id))
    }
    expect(new Set(ids[0]).size).toBe(2)
    // The same id when read again: a replay is recognized as a duplicate.
    expect(ids[1]).toEqual(ids[0])

    // maxLineBytes is the source's own setting.
    const { got } = await read(3, 4096)
    expect(got[0]?.event.original === text.slice(0, 4096)).toBe(true)
    expect(got[0]?.kea.parse.truncated).toBe(true)
  }, 30_000)

  it('while the pipeline does not take a batch, hands over no other and reads no further (the flush timer\'s batches piled up)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
    // 60 entries written 5 ms apart, then a marker file: journalctl has written them all.
    const entries = Array.from({ length: 60 }, (_, i) => JSON.stringify({ __CURSOR: `c-${i}`, __REALTIME_TIMESTAMP: String(1795512161000000 + i * 1000), MESSAGE: `INFO  DHCP4_E${i} entry` }))
    writeFileSync(join(dir, 'out.json'), entries.join('\n') + '\n')
    const journalctl = join(dir, 'journalctl')
    writeFileSync(journalctl, `#!/bin/sh\n[ "$1" = --version ] && exit 0\nwhile IFS= read -r l; do printf '%s\\n' "$l"; sleep 0.005; done < '${join(dir, 'out.json')}'\ntouch '${join(dir, 'done')}'\nexec sleep 600\n`, { mode: 0o755 })
    const source = new JournalSource({ type: 'journal', name: 'j', journalctl, flushMs: 20 }, join(dir, 'state'), quiet)
    let pending = 0
    let handed = 0
    const ctl = new AbortController()
    // The store is down: no hand-over ever completes.
    const running = source.run(async (b) => { pending++; handed += b.events.length; await new Promise(() => {}) }, ctl.signal)
    try {
      await vi.waitFor(() => { expect(existsSync(join(dir, 'done'))).toBe(true) }, { timeout: 15_000 })
      // Before, each 20 ms tick handed over what had been read since, one more emit left waiting.
      let ticks = 0
      const t = setInterval(() => { ticks++ }, 20)
      await vi.waitFor(() => { expect(pending >= 3 || ticks >= 15).toBe(true) }, { timeout: 5000 })
      clearInterval(t)
      expect(pending).toBe(1)
      expect(handed).toBeLessThan(60)
    } finally {
      ctl.abort()
      await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 2000))])
    }
  }, 30_000)

  it('does not pass --output-fields to a journalctl older than systemd 236, which refuses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-journal-'))
    writeFileSync(join(dir, 'out.json'), JSON.stringify({ __CURSOR: 'c-1', __REALTIME_TIMESTAMP: '1795512161000000', MESSAGE: 'INFO  DHCP4_OLD from an old journalctl' }) + '\n')
    const journalctl = join(dir, 'journalctl')
    // As systemd 219's journalctl (RHEL 7): an unknown option is an error.
    writeFileSync(journalctl, `#!/bin/sh\n[ "$1" = --version ] && { echo 'systemd 219'; echo '+PAM +AUDIT'; exit 0; }\nfor a in "$@"; do case "$a" in --output-fields=*) echo "journalctl: unrecognized option '$a'" >&2; exit 1;; esac; done\ncat '${join(dir, 'out.json')}'\nexec sleep 600\n`, { mode: 0o755 })
    const got: KeaEvent[] = []
    const source = new JournalSource({ type: 'journal', name: 'j', journalctl, flushMs: 20 }, join(dir, 'state'), quiet)
    const ctl = new AbortController()
    const running = source.run(async (b) => { got.push(...b.events); b.ack() }, ctl.signal)
    try {
      await vi.waitFor(() => { expect(got.map((e) => e.event.code)).toEqual(['DHCP4_OLD']) }, { timeout: 10_000 })
    } finally {
      ctl.abort()
      await running
    }
  }, 30_000)
})
