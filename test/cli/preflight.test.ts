import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { journalWarning, warnAboutInputs } from '../../src/app/preflight.js'
import { parseConfig } from '../../src/config/config.js'
import { KEA_FIXTURES, readFixture, ROOT } from '../helpers/fixtures.js'

// A first install's commonest silent failure: a source that has nothing to read. `run` starts
// anyway (files may appear, a journal may come) but says so at once, with a code.

interface LogLine { level: string, code?: string, msg: string, source?: string, glob?: string }

describe('keatrail run warns about sources with nothing to read', () => {
  it('a glob matching no file and a journal without entries: coded warnings; the file source still picks the file up later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-preflight-'))
    const logs = join(dir, 'logs')
    const journal = join(dir, 'journal')
    mkdirSync(logs)
    mkdirSync(journal)
    const glob = join(logs, 'kea-dhcp4.log*')
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, [
      `dataDir: ${join(dir, 'data')}`,
      'api: { enabled: false }',
      'sources:',
      `  - { type: file, name: k4, include: ["${glob}"], timeZone: UTC, pollIntervalMs: 20 }`,
      `  - { type: journal, name: j4, directory: ${journal}, units: [kea-dhcp4-server.service] }`,
      ''
    ].join('\n'))
    const proc = spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exit = new Promise<number | null>((resolve) => proc.on('exit', resolve))
    const lines = (): LogLine[] => err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)
    try {
      await expect.poll(() => lines().filter((l) => l.level === 'warn').map((l) => [l.code, l.source]).sort(), { timeout: 15_000 })
        .toEqual([['KEATRAIL_ERR_SOURCE_NO_FILES', 'k4'], ['KEATRAIL_ERR_SOURCE_NO_JOURNAL', 'j4']])
      expect(lines().find((l) => l.code === 'KEATRAIL_ERR_SOURCE_NO_FILES')).toMatchObject({ glob, msg: expect.stringContaining(glob) })
      expect(lines().find((l) => l.code === 'KEATRAIL_ERR_SOURCE_NO_JOURNAL')?.msg).toContain('kea-dhcp4-server.service')
      // Waiting, not given up: the file that appears is followed.
      writeFileSync(join(logs, 'kea-dhcp4.log'), readFixture('kea-2.2.0-dhcp4-INFO-full.log'))
      await expect.poll(() => lines().some((l) => l.msg === 'Following file.'), { timeout: 15_000 }).toBe(true)
    } finally {
      proc.kill('SIGTERM')
    }
    expect(await exit).toBe(0)
  }, 40_000)

  it('says nothing about sources that have input', async () => {
    const warned: string[] = []
    const cfg = parseConfig({ sources: [{ type: 'file', name: 'k', include: [join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-*.log')] }] })
    await warnAboutInputs(cfg.sources, () => ({ info: () => {}, error: () => {}, warn: (code) => { warned.push(code) } }))
    expect(warned).toEqual([])
  })

  it('a journal source on a machine without a journal', async () => {
    const none = join(mkdtempSync(join(tmpdir(), 'kt-preflight-')), 'no-journal')
    const cfg = parseConfig({ sources: [{ type: 'journal', name: 'j', units: ['kea-dhcp6-server.service'] }] }).sources[0]
    if (cfg?.type !== 'journal') throw new Error('a journal source')
    expect(await journalWarning(cfg, [none, `${none}-too`])).toBe(`No systemd journal on this machine (neither ${none} nor ${none}-too) for kea-dhcp6-server.service: the source waits for one`)
  })
})
