import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { beforeAll, describe, expect, it } from 'vitest'
import { csvRecords } from '../../src/cli/attribute.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// Finding 9 (audit 3), a and c: `lease attribute` given a directory is one coded input line with
// exit 2 (it was `EISDIR: EISDIR: …`, exit 1), and `lease report --out` refuses a file that exists
// unless --force, and a symbolic link always (it overwrote the link's target without a word).

const LOG = join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-file.log')
const QUESTION = ['192.0.2.10', '2026-11-24 18:02:45 UTC']

function oneCodedLine (err: string, code: string): void {
  expect(err).toMatch(new RegExp(`^keatrail: ${code}: [^\\n]+\\n$`))
}

let dir = ''
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kt-files-'))
  const r = await runCli(['import', '--data-dir', dir, '--host', 'kea-a', LOG])
  expect(r.code, r.err).toBe(0)
}, 60_000)

describe('lease attribute', () => {
  it('given a directory: KEATRAIL_ERR_INPUT_READ naming it, exit 2, nothing written', async () => {
    const sub = join(dir, 'a-directory')
    mkdirSync(sub)
    const r = await runCli(['lease', 'attribute', '--data-dir', dir, sub])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_INPUT_READ')
    expect(r.err).toContain(sub)
    expect(r.out).toBe('')
  })

  it('a stream that fails while being read (an I/O error) ends with KEATRAIL_ERR_INPUT_READ naming it', async () => {
    const failing = new Readable({ read () { this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) } })
    const read = async (): Promise<void> => { for await (const _ of csvRecords(failing, 'report.csv')) { /* none */ } }
    await expect(read()).rejects.toMatchObject({ code: 'KEATRAIL_ERR_INPUT_READ', message: 'Cannot read report.csv: EIO: i/o error, read' })
  })
})

describe('lease report --out', () => {
  it('a symbolic link to another file: refused, with or without --force; the target is untouched', async () => {
    const target = join(dir, 'precious.txt')
    writeFileSync(target, 'keep me\n')
    const link = join(dir, 'link.html')
    symlinkSync(target, link)
    for (const force of [[], ['--force']]) {
      const r = await runCli(['lease', 'report', ...QUESTION, '--data-dir', dir, '--out', link, ...force])
      expect(r.code).toBe(2)
      oneCodedLine(r.err, 'KEATRAIL_ERR_OUTPUT_EXISTS')
      expect(r.err).toContain('symbolic link')
      expect(readFileSync(target, 'utf8')).toBe('keep me\n')
      expect(lstatSync(link).isSymbolicLink()).toBe(true)
      expect(readlinkSync(link)).toBe(target)
    }
  })

  it('a dangling symbolic link: refused, nothing created where it points', async () => {
    const target = join(dir, 'not-there.html')
    const link = join(dir, 'dangling.html')
    symlinkSync(target, link)
    for (const force of [[], ['--force']]) {
      const r = await runCli(['lease', 'report', ...QUESTION, '--data-dir', dir, '--out', link, ...force])
      expect(r.code).toBe(2)
      oneCodedLine(r.err, 'KEATRAIL_ERR_OUTPUT_EXISTS')
      expect(existsSync(target)).toBe(false)
    }
  })

  it('a new file is written; once it exists, refused without --force and replaced with it', async () => {
    const out = join(dir, 'report.html')
    const made = await runCli(['lease', 'report', ...QUESTION, '--data-dir', dir, '--out', out])
    expect(made.code, made.err).toBe(0)
    expect(readFileSync(out, 'utf8')).toContain('<html')
    writeFileSync(out, 'an older report\n')
    const refused = await runCli(['lease', 'report', ...QUESTION, '--data-dir', dir, '--out', out])
    expect(refused.code).toBe(2)
    oneCodedLine(refused.err, 'KEATRAIL_ERR_OUTPUT_EXISTS')
    expect(refused.err).toContain('--force')
    expect(readFileSync(out, 'utf8')).toBe('an older report\n')
    const forced = await runCli(['lease', 'report', ...QUESTION, '--data-dir', dir, '--out', out, '--force', '--format', 'json'])
    expect(forced.code, forced.err).toBe(0)
    expect((JSON.parse(readFileSync(out, 'utf8')) as { answer: { status: string } }).answer.status).toBe('held')
  })
})
