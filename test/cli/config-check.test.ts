import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { runCli as run } from '../helpers/cli.js'

function file (text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'kt-config-check-')), 'keatrail.yaml')
  writeFileSync(path, text)
  return path
}

describe('keatrail config check', () => {
  it('prints the effective config, defaults filled in, as YAML', async () => {
    const path = file('dataDir: /var/lib/keatrail\nsources:\n  - { type: file, name: kea4, include: [/var/log/kea/kea-dhcp4.log*] }\n')
    const r = await run(['config', 'check', path])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const effective = parseYaml(r.out) as { dataDir: string, store: { type: string }, api: { port: number }, sources: Array<{ pattern: string, readFrom: string }> }
    expect(effective.dataDir).toBe('/var/lib/keatrail')
    expect(effective.store.type).toBe('sqlite')
    expect(effective.api.port).toBe(8080)
    expect(effective.sources[0]).toMatchObject({ pattern: 'kea-file', readFrom: 'beginning' })
  })

  it('reports every problem, one coded line each, and exits 2', async () => {
    const path = file([
      'dataDir: 5',
      'api: { port: 70000 }',
      'sources:',
      '  - { type: file, name: kea4, include: [] }',
      'bogus: 1'
    ].join('\n') + '\n')
    const r = await run(['config', 'check', path])
    expect(r.code).toBe(2)
    expect(r.out).toBe('')
    const lines = r.err.trim().split('\n')
    const coded = lines.filter((l) => l.startsWith('keatrail: KEATRAIL_ERR_CONFIG_INVALID: '))
    expect(coded.length).toBeGreaterThanOrEqual(4)
    expect(coded.join('\n')).toMatch(/: dataDir: /)
    expect(coded.join('\n')).toMatch(/: api\.port: /)
    expect(coded.join('\n')).toMatch(/: sources\.0\.include: /)
    expect(coded.join('\n')).toContain('bogus')
    expect(lines.at(-1)).toBe(`${path}: ${coded.length} problem(s)`)
  })

  it('checks what the schema cannot see: pattern names, patterns and time zones of sources', async () => {
    const path = file([
      'sources:',
      '  - { type: file, name: a, include: [/x], pattern: kea-sylog }',
      '  - { type: file, name: b, include: [/x], pattern: "%d %p" }',
      '  - { type: file, name: c, include: [/x], timeZone: Mars/Olympus }'
    ].join('\n') + '\n')
    const r = await run(['config', 'check', path])
    expect(r.code).toBe(2)
    expect(r.err).toContain('sources.0.pattern (a): KEATRAIL_ERR_PATTERN_UNKNOWN')
    expect(r.err).toContain('sources.1.pattern (b): KEATRAIL_ERR_PATTERN_SYNTAX')
    expect(r.err).toContain('sources.2.timeZone (c)')
  })

  it('a file that is not YAML, or not there, is one coded line', async () => {
    const bad = await run(['config', 'check', file('sources: [\n')])
    expect(bad.code).toBe(2)
    expect(bad.err.split('\n')[0]).toMatch(/^keatrail: KEATRAIL_ERR_CONFIG_INVALID: /)
    const missing = await run(['config', 'check', '/nonexistent/keatrail.yaml'])
    expect(missing.code).toBe(2)
    expect(missing.err.split('\n')[0]).toMatch(/^keatrail: KEATRAIL_ERR_INPUT_READ: Cannot read \/nonexistent\/keatrail.yaml/)
  })
})
