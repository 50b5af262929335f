import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { runCli as run } from '../helpers/cli.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// Operator mistakes (issue 18): each is one line with a stable code and a non-zero exit, never
// a silent wrong answer, a stack or a dump.

const INFO4 = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
const SYSLOG_PAYLOADS = join(KEA_FIXTURES, 'golden', 'syslog-payloads.log')

/** One line, `keatrail: CODE: …`. */
function oneCodedLine (err: string, code: string): void {
  expect(err).toMatch(new RegExp(`^keatrail: ${code}: [^\\n]+\\n$`))
}

describe('pattern mistakes', () => {
  it('refuses a mistyped built-in name, listing the names', async () => {
    const r = await run(['parse', '--pattern', 'kea-sylog', INFO4])
    expect(r.code).toBe(2)
    expect(r.out).toBe('')
    oneCodedLine(r.err, 'KEATRAIL_ERR_PATTERN_UNKNOWN')
    expect(r.err).toContain('"kea-sylog"')
    expect(r.err).toContain('kea-file, kea-syslog, kea-file-pre-1.7.7')
  })

  it('refuses a pattern without %m, such as a lone %', async () => {
    for (const pattern of ['%', '%D{%Y-%m-%d %H:%M:%S.%q} %-5p']) {
      const r = await run(['parse', '--pattern', pattern, INFO4])
      expect(r.code).toBe(2)
      oneCodedLine(r.err, 'KEATRAIL_ERR_PATTERN_SYNTAX')
      expect(r.err).toContain('no %m')
    }
  })
})

describe('an import whose lines mostly do not match the pattern', () => {
  it('stores every line, warns with the pattern the lines look like, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mistakes-'))
    // Kea's syslog payloads imported with the default (file) pattern.
    const r = await run(['import', '--data-dir', dir, '--tz', 'UTC', SYSLOG_PAYLOADS])
    expect(r.code).toBe(1)
    const warning = r.err.split('\n').filter((l) => l.startsWith('keatrail: KEATRAIL_ERR_PATTERN_MISMATCH: '))
    expect(warning).toEqual([
      `keatrail: KEATRAIL_ERR_PATTERN_MISMATCH: ${SYSLOG_PAYLOADS}: 35 of 35 records (100 %) did not match the pattern "kea-file" and are kept only as unmatched raw text; ` +
      'the lines look like the built-in pattern kea-syslog: import it with --pattern kea-syslog'
    ])
    expect(r.err).toContain('1 file(s) mostly not matching the pattern')
    const store = new SqliteStore({ path: join(dir, 'keatrail.db') })
    expect(await store.count()).toBe(35)
    await store.close()
  })

  it('names no built-in pattern when none fits, and judges each file on its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mistakes-'))
    const other = join(dir, 'other.log')
    writeFileSync(other, 'hello\nthis is not a Kea log\n')
    const r = await run(['import', '--data-dir', dir, '--tz', 'UTC', INFO4, other])
    expect(r.code).toBe(1)
    expect(r.err).toContain(`KEATRAIL_ERR_PATTERN_MISMATCH: ${other}: 2 of 2 records`)
    expect(r.err).toContain('give the pattern of the Kea output that wrote them')
    expect(r.err).not.toContain(`KEATRAIL_ERR_PATTERN_MISMATCH: ${INFO4}`)
  })
})

describe('a truncated .gz', () => {
  function truncatedCopy (): string {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mistakes-'))
    const whole = readFileSync(join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-DEBUG99-full.log.gz'))
    const path = join(dir, 'kea-dhcp4.log.1.gz')
    writeFileSync(path, whole.subarray(0, Math.floor(whole.length / 2)))
    return path
  }

  it('is an error naming the file on import; what was read before the cut is stored and counted', async () => {
    const gz = truncatedCopy()
    const dir = mkdtempSync(join(tmpdir(), 'kt-mistakes-'))
    const r = await run(['import', '--data-dir', dir, '--tz', 'UTC', gz])
    expect(r.code).toBe(1)
    expect(r.err).toContain(`keatrail: KEATRAIL_ERR_INPUT_TRUNCATED: ${gz} is a truncated gzip file (unexpected end of file)`)
    const summary = /imported 0 file\(s\), [\d.]+ MiB, ([\d,]+) lines → ([\d,]+) events .*: (\d+) new/.exec(r.err)
    expect(summary).not.toBeNull()
    const [lines, events, stored] = [summary![1]!, summary![2]!, summary![3]!].map((n) => Number(n.replaceAll(',', '')))
    expect(lines).toBeGreaterThan(0)
    expect(events).toBeGreaterThan(0)
    expect(stored).toBe(events)
    const store = new SqliteStore({ path: join(dir, 'keatrail.db') })
    expect(await store.count()).toBe(events)
    await store.close()
  })

  it('is an error naming the file on parse', async () => {
    const gz = truncatedCopy()
    const r = await run(['parse', '--tz', 'UTC', '-q', gz])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_INPUT_TRUNCATED')
  })

  it('a missing .gz is a coded read error, not a crash', async () => {
    const r = await run(['parse', '/nonexistent/kea-dhcp4.log.1.gz'])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_INPUT_READ')
  })
})

describe('keatrail run with a source in the wrong pattern (the process)', () => {
  it('logs one coded warning for that source, with the fix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mistakes-'))
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, [
      `dataDir: ${join(dir, 'data')}`,
      'api: { enabled: false }',
      'sources:',
      `  - { type: file, name: wrong, include: ["${INFO4}"], pattern: kea-syslog, timeZone: UTC, idleFlushMs: 100 }`,
      `  - { type: file, name: right, include: ["${join(KEA_FIXTURES, 'kea-2.2.0-dhcp6-INFO-full.log')}"], timeZone: UTC, idleFlushMs: 100 }`
    ].join('\n') + '\n')
    const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exit = new Promise<number | null>((resolve) => proc.on('exit', resolve))
    try {
      await expect.poll(() => err.includes('KEATRAIL_ERR_PATTERN_MISMATCH'), { timeout: 15_000 }).toBe(true)
    } finally {
      proc.kill('SIGTERM')
    }
    expect(await exit).toBe(0)
    const warnings = err.trim().split('\n').filter((l) => l.includes('KEATRAIL_ERR_PATTERN_MISMATCH')).map((l) => JSON.parse(l) as { msg: string, source: string })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ source: 'wrong' })
    expect(warnings[0]?.msg).toContain('set `pattern: kea-file` in its configuration')
  }, 30_000)
})
