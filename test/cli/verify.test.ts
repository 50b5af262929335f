import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { packLines, unpackLines } from '../../src/store/sqlite/blocks/codec.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// Issue 22: `keatrail verify` re-computes the store's tamper-evidence chain: exit 0 when every
// record is as stored (and the head a report names is in the chain), 1 with the first broken
// link and the altered record otherwise.

describe('keatrail verify', () => {
  it('holds on a store as keatrail wrote it, names the altered record after one byte is changed behind its back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-verify-'))
    for (const [f, host] of [['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-b']]) {
      const r = await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', host as string, join(KEA_FIXTURES, f as string)])
      expect(r.code, r.err).toBe(0)
    }
    // Read-only: the file is the same bytes after verify (a copy kept as evidence stays as kept).
    const before = createHash('sha256').update(readFileSync(join(dir, 'keatrail.db'))).digest('hex')
    const ok = await runCli(['verify', '--data-dir', dir])
    expect(ok.code, ok.err).toBe(0)
    expect(createHash('sha256').update(readFileSync(join(dir, 'keatrail.db'))).digest('hex')).toBe(before)
    expect(ok.out).toMatch(/^chain: \d+ links, [\d,]+ records, oldest kept link \d+ .*, head [0-9a-f]{64} /m)
    expect(ok.out).toMatch(/^OK: every record covered by the chain is as it was stored$/m)
    const json = JSON.parse((await runCli(['verify', '--data-dir', dir, '--json'])).out) as { ok: boolean, head: { link: string, seq: number }, records: number }
    expect(json.ok).toBe(true)
    const named = await runCli(['verify', '--data-dir', dir, '--head', json.head.link])
    expect([named.code, named.out]).toEqual([0, expect.stringMatching(new RegExp(`head ${json.head.link}: link ${json.head.seq} of the chain \\(the newest\\)`))])
    const unknown = await runCli(['verify', '--data-dir', dir, '--head', 'ab'.repeat(32)])
    expect([unknown.code, unknown.out]).toEqual([1, expect.stringMatching(/not in the chain/)])
    // A report file that is not there, or larger than any report (sparse: no disk used): one line each.
    const missing = await runCli(['verify', '--data-dir', dir, '--report', join(dir, 'no-such-report.html')])
    expect([missing.code, missing.err.trim().split('\n')]).toEqual([2, [expect.stringMatching(/^keatrail: KEATRAIL_ERR_INPUT_READ: Cannot read \S+no-such-report\.html/)]])
    const huge = join(dir, 'huge.html')
    writeFileSync(huge, '')
    truncateSync(huge, 129 * 1024 * 1024)
    const tooBig = await runCli(['verify', '--data-dir', dir, '--report', huge])
    expect([tooBig.code, tooBig.err.trim().split('\n')]).toEqual([2, [expect.stringMatching(/^keatrail: KEATRAIL_ERR_USAGE: \S+huge\.html is 135266304 bytes: no evidence report is larger than 134217728$/)]])
    const bad = await runCli(['verify', '--data-dir', dir, '--head', 'xyz'])
    expect([bad.code, bad.err.trim().split('\n')]).toEqual([2, [expect.stringMatching(/^keatrail: KEATRAIL_ERR_USAGE: --head takes the 64 hex digits/)]])

    // One character of one stored raw record changed, the block packed again (what someone
    // editing the file with sqlite3 and the codec would do).
    const db = new Database(join(dir, 'keatrail.db'))
    const run = db.prepare('SELECT block, pos, n FROM chain_runs ORDER BY seq, ord LIMIT 1').get() as { block: number, pos: number, n: number }
    const row = db.prepare('SELECT codec, payload FROM blocks WHERE id = ?').get(run.block) as { codec: 1 | 2, payload: Buffer }
    const lines = unpackLines(row.payload, row.codec)
    const at = run.pos + 3
    lines.originals[at] = (lines.originals[at] as string).replace('INFO', 'INF0')
    db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(packLines(lines, row.codec), run.block)
    db.close()
    const broken = await runCli(['verify', '--data-dir', dir])
    expect(broken.code).toBe(1)
    expect(broken.out).toMatch(new RegExp(`^BROKEN at link \\d+ \\(stored [^)]+\\): a record differs from what was stored: record \\S+ \\(block ${run.block}, position ${at}\\)$`, 'm'))
    expect(broken.out).toMatch(/^FAILED$/m)
  }, 60_000)

  it('refuses a file from before the chain without changing it (no migration)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-verify-old-'))
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-a', join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')])).code).toBe(0)
    const db = new Database(join(dir, 'keatrail.db'))
    db.exec('DROP TABLE chain_runs; DROP TABLE chain; DROP TABLE chain_dropped; PRAGMA user_version = 17')
    db.close()
    const r = await runCli(['verify', '--data-dir', dir])
    expect([r.code, r.err.trim()]).toEqual([2, expect.stringMatching(/^keatrail: KEATRAIL_ERR_USAGE: \S+keatrail\.db has schema version 17: it keeps no tamper-evidence chain yet/)])
    const after = new Database(join(dir, 'keatrail.db'), { readonly: true })
    expect(after.pragma('user_version', { simple: true })).toBe(17)
    after.close()
  })

  it('holds after a re-import with the right pattern replaces records whose text changed (multi-line records joined)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-verify-repair-'))
    // 400 lines of the DEBUG capture: packet dumps span several lines. Read with the syslog
    // pattern every line is a record of its own (unparsed); with the file pattern, continuation
    // lines join their record, at the same id and offset.
    const log = join(dir, 'debug.log')
    writeFileSync(log, gunzipSync(readFileSync(join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-DEBUG99-full.log.gz'))).toString('utf8').split('\n').slice(0, 400).join('\n') + '\n')
    // Exit 1: most lines did not match the pattern (kept as unmatched raw text, as here wanted).
    expect((await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-a', '--pattern', 'kea-syslog', log])).code).toBe(1)
    const again = await runCli(['import', '--data-dir', dir, '--tz', 'UTC', '--host', 'kea-a', log])
    expect(again.code, again.err).toBe(0)
    expect(again.out + again.err).toMatch(/ [1-9]\d* replaced \(stored before without parsing as well\)/)
    const r = await runCli(['verify', '--data-dir', dir, '--json'])
    const rep = JSON.parse(r.out) as { ok: boolean, partial: number, broken?: unknown }
    expect([r.code, rep.broken, rep.ok]).toEqual([0, undefined, true])
    // The first import's link lost the records whose text changed: kept by their leaves.
    expect(rep.partial).toBeGreaterThan(0)
  }, 60_000)
})
