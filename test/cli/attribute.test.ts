import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { reportTime } from '../../src/leases/attribute.js'
import { LocalTimeResolver } from '../../src/parse/time/zone.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// Issue 22: `keatrail lease attribute` answers an abuse report's rows — address, time, anything
// else — one output row per input row, as `lease at` would; rows it cannot answer say why and
// never stop the batch. (Every probe of the real-Kea ground truth as one batch:
// test/leases/ground-truth.test.ts.)

const sample = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
let dir = ''

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kt-attribute-'))
  const r = await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-a', sample])
  expect(r.code, r.err).toBe(0)
})

function csv (text: string): string[][] {
  return parse(text, { relax_column_count: true }) as string[][]
}

describe('keatrail lease attribute', () => {
  it('answers each row in order with the holder, its interval and evidence; keeps the report\'s columns; says why a row has no answer', async () => {
    // 192.0.2.203: lease4-add at 09:16:15.783, wiped at 09:16:16.490 (the bundled sample).
    const report = [
      'ticket,src_ip,date,note',
      'T-1,192.0.2.203,2026-11-24 09:16:16 UTC,"copyright, notice"',
      'T-2,192.0.2.203,2026-11-24T10:16:16.100+01:00,offset',
      'T-3,192.0.2.203,1795511776,epoch seconds',
      'T-4,192.0.2.203,24/Nov/2026:09:16:16 +0000,web server log',
      'T-5,192.0.2.203,2026-11-24T09:16:30Z,after the wipe',
      'T-6,192.0.2.203,2020-01-01T00:00:00Z,long before',
      'T-7,not-an-ip,2026-11-24T09:16:16Z,typo',
      'T-8,192.0.2.203,2026-11-24 09:16:16,no zone',
      'T-9,192.0.2.203,yesterday,no time',
      'T-10,192.0.2.203,2026-02-30T09:16:16Z,no such day',
      'T-11,,,empty'
    ].join('\n')
    const file = join(dir, 'report.csv')
    writeFileSync(file, report + '\n')
    const r = await runCli(['lease', 'attribute', '--data-dir', dir, file])
    expect(r.code, r.err).toBe(1)
    expect(r.err).toContain('attributed 11 row(s): 4 held, 1 no-holder, 1 not-covered, 0 gap, 5 bad-input')
    const [header, ...rows] = csv(r.out)
    expect(header).toEqual(['ticket', 'src_ip', 'date', 'note', 'status', 'reason', 'mac', 'client_id', 'duid', 'iaid', 'hostname', 'lease', 'start', 'end', 'end_reason', 'certainty', 'servers', 'evidence'])
    const col = (row: string[] | undefined, name: string): string => row?.[(header as string[]).indexOf(name)] ?? ''
    expect(rows.map((x) => col(x, 'ticket'))).toEqual(['T-1', 'T-2', 'T-3', 'T-4', 'T-5', 'T-6', 'T-7', 'T-8', 'T-9', 'T-10', 'T-11'])
    expect(col(rows[0], 'note')).toBe('copyright, notice')
    for (const held of rows.slice(0, 4)) {
      expect(col(held, 'status')).toBe('held')
      expect(col(held, 'mac')).toBe('1A-1B-1C-1D-1E-3F')
      expect(col(held, 'lease')).toBe('192.0.2.203')
      expect(col(held, 'start')).toBe('2026-11-24T09:16:15.783Z')
      expect(col(held, 'end')).toBe('2026-11-24T09:16:16.490Z')
      expect(col(held, 'end_reason')).toBe('wiped')
      expect(col(held, 'servers')).toBe('kea-a')
      expect(col(held, 'evidence').split(' ')).toHaveLength(2)
    }
    // The same answer as lease at, whose evidence ids name the same lines.
    const at = JSON.parse((await runCli(['lease', 'at', '192.0.2.203', '2026-11-24T09:16:16Z', '--data-dir', dir, '--json'])).out) as { holders: Array<{ evidence: string[] }> }
    expect(col(rows[0], 'evidence')).toBe(at.holders[0]?.evidence.join(' '))
    expect([col(rows[4], 'status'), col(rows[4], 'reason')]).toEqual(['no-holder', 'nobody held 192.0.2.203 at 2026-11-24T09:16:30.000Z; before: 1A-1B-1C-1D-1E-3F until 2026-11-24T09:16:16.490Z (wiped)'])
    expect(col(rows[5], 'status')).toBe('not-covered')
    expect(col(rows[5], 'reason')).toMatch(/^keatrail has logs from 2026-11-24T09:16:10\.304Z to /)
    expect(rows.slice(6).map((x) => [col(x, 'status'), col(x, 'reason')])).toEqual([
      ['bad-input', '"not-an-ip" is not an IPv4 or IPv6 address'],
      ['bad-input', 'time "2026-11-24 09:16:16" has no time zone: give --tz (an IANA zone) or write the offset'],
      ['bad-input', 'time "yesterday" is not RFC 3339, "YYYY-MM-DD HH:MM:SS UTC", epoch seconds or milliseconds'],
      ['bad-input', 'time "2026-02-30T09:16:16Z" is not a valid date'],
      ['bad-input', 'a row needs an address and a time (columns src_ip and date)']
    ])
  })

  it('reads zone-less times in --tz, a header-less report from standard input, and writes NDJSON with --json; a malformed CSV record is one bad-input row', async () => {
    const r = await runCli(['lease', 'attribute', '--data-dir', dir, '--tz', 'Europe/Berlin', '--json', '-'],
      '192.0.2.203,2026-11-24 10:16:16,a\n192.0.2.203,"2026-11-24 10:16:16,b\n')
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({ address: '192.0.2.203', time: '2026-11-24 10:16:16', column3: 'a', status: 'held', mac: '1A-1B-1C-1D-1E-3F' })
    expect(lines[1]?.status).toBe('bad-input')
    expect(lines[1]?.reason).toMatch(/^unreadable CSV: Quote Not Closed/)
    expect(r.code).toBe(1)
    const ok = await runCli(['lease', 'attribute', '--data-dir', dir, '-'], '192.0.2.203,2026-11-24T09:16:16Z\n')
    expect(ok.code, ok.err).toBe(0)
    expect(csv(ok.out)[0]?.slice(0, 3)).toEqual(['address', 'time', 'status'])
  })

  it('streams: answers flow out while the report is still being read, 100,000 rows in, 100,000 out, in order', async () => {
    const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'lease', 'attribute', '--data-dir', dir, '-'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve))
    const N = 100_000
    const row = (i: number): string => `192.0.2.${1 + (i % 254)},2026-11-24T09:${16 + (i % 2)}:${String(i % 60).padStart(2, '0')}Z,${i}\n`
    let i = 0
    const feed = async (upTo: number): Promise<void> => {
      while (i < upTo) {
        let chunk = ''
        for (let k = 0; k < 1000 && i < upTo; k++, i++) chunk += row(i)
        if (!proc.stdin.write(chunk)) await new Promise((resolve) => proc.stdin.once('drain', resolve))
      }
    }
    await feed(N / 2)
    // Half the report sent, the input still open: answers are already coming out.
    await vi.waitFor(() => { expect(out.split('\n').length).toBeGreaterThan(1000) }, { timeout: 60_000, interval: 50 })
    await feed(N)
    proc.stdin.end()
    expect(await exited, err).toBe(0)
    const lines = out.trimEnd().split('\n')
    expect(lines).toHaveLength(N + 1)
    expect(lines.slice(1).every((l, k) => l.split(',')[2] === String(k))).toBe(true)
    expect(err).toMatch(/attributed 100000 row\(s\)/)
  }, 180_000)
})

describe('keatrail lease attribute: reports as they come', () => {
  it('keeps a report\'s own columns named like the answer\'s, finds the one named column and takes the other, answers a first row that is no header, and reads on past a huge record', async () => {
    const huge = 'x'.repeat(70 * 1024)
    const r = await runCli(['lease', 'attribute', '--data-dir', dir, '-'], [
      'Date,Source IP Address,hostname,status',
      `2026-11-24T09:16:16Z,192.0.2.203,printer,open`,
      `2026-11-24T09:16:16Z,192.0.2.203,${huge},open`,
      `2026-11-24T09:16:16Z,192.0.2.203,last,open`
    ].join('\n') + '\n')
    const [header, ...rows] = csv(r.out)
    expect(header?.slice(0, 6)).toEqual(['Date', 'Source IP Address', 'hostname_input', 'status_input', 'status', 'reason'])
    expect(rows.map((x) => [x[2]?.length, x[3], x[4]])).toEqual([[7, 'open', 'held'], [huge.length, 'open', 'held'], [4, 'open', 'held']])
    const noHeader = await runCli(['lease', 'attribute', '--data-dir', dir, '-'], 'not-an-ip,sometime\n192.0.2.203,2026-11-24T09:16:16Z\n')
    expect(csv(noHeader.out).slice(1).map((x) => x[2])).toEqual(['bad-input', 'held'])
  })
})

describe('keatrail lease attribute: a report that is not there', () => {
  it('writes a cell a spreadsheet would run as a formula (= + - @ first) as text', async () => {
    const file = join(dir, 'formulas.csv')
    writeFileSync(file, 'ticket,address,time\n=HYPERLINK("http://example.invalid"),192.0.2.203,2026-11-24T09:16:16Z\n@SUM(1),192.0.2.203,2026-11-24T09:16:16Z\n')
    const r = await runCli(['lease', 'attribute', '--data-dir', dir, file])
    expect(r.code, r.err).toBe(0)
    const [header, ...rows] = csv(r.out)
    const ticket = (header as string[]).indexOf('ticket')
    expect(rows.map((row) => row[ticket])).toEqual(["'=HYPERLINK(\"http://example.invalid\")", "'@SUM(1)"])
  })

  it('a missing file is one coded line, exit 2, before any store is opened', async () => {
    const missing = join(dir, 'no-such-report.csv')
    const r = await runCli(['lease', 'attribute', '--data-dir', join(dir, 'no-store-here'), missing])
    expect(r.code).toBe(2)
    expect(r.err.trim().split('\n')).toHaveLength(1)
    expect(r.err).toMatch(new RegExp(`^keatrail: KEATRAIL_ERR_INPUT_READ: Cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`))
    expect(r.out).toBe('')
  })
})

describe('reportTime', () => {
  it('reads the forms abuse reports use, and a local time in a zone (the earlier instant when DST repeats an hour)', () => {
    const utc = Date.UTC(2026, 10, 24, 4, 16, 0)
    for (const s of ['2026-11-24T04:16:00Z', '2026-11-24 04:16:00 UTC', '2026-11-24 04:16:00 GMT', '2026-11-24T05:16:00+01:00', '2026-11-24 05:16:00 +0100', '1795493760', '1795493760000', '24/Nov/2026:04:16:00 +0000', '2026-11-24T04:16Z']) {
      expect(reportTime(s, undefined), s).toBe(utc)
    }
    expect(reportTime('2026-11-24 05:16:00', new LocalTimeResolver('Europe/Berlin'))).toBe(utc)
    // 2026-10-25 02:30 happens twice in Berlin: first at 00:30Z (CEST), then 01:30Z (CET).
    expect(reportTime('2026-10-25 02:30:00', new LocalTimeResolver('Europe/Berlin'))).toBe(Date.UTC(2026, 9, 25, 0, 30))
    expect(() => reportTime('2026-11-24 04:16:00', undefined)).toThrow(/no time zone/)
    expect(() => reportTime('24/Foo/2026:04:16:00 +0000', undefined)).toThrow(/unknown month/)
    // Never rolled over into another day, never a two-digit year, never a 24-hour offset.
    expect(() => reportTime('31/Feb/2026:04:16:00 +0000', undefined)).toThrow(/not a valid date/)
    expect(new Date(reportTime('0099-01-01T00:00:00Z', undefined)).getUTCFullYear()).toBe(99)
    expect(() => reportTime('2026-11-24T04:16:00+2400', undefined)).toThrow(/impossible offset/)
    expect(reportTime('2026-12-31T23:59:60Z', undefined)).toBe(Date.UTC(2026, 11, 31, 23, 59, 59, 999))
    expect(reportTime('1795493760.9999', undefined)).toBe(utc + 999)
  })
})
