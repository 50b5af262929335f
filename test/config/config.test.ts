import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/config/config.js'
import { defaultConfig } from '../../src/cli/run.js'
import { FileSource } from '../../src/sources/file/source.js'

describe('keatrail config', () => {
  it('names an unknown key with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-cfg-'))
    const f = join(dir, 'keatrail.yaml')
    writeFileSync(f, 'sources:\n  - type: file\n    name: k\n    include: [/var/log/kea/kea-dhcp4.log*]\n    follow: yes\n')
    expect(() => loadConfig(f)).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringMatching(/keatrail\.yaml: sources\.0.*follow/) }))
  })

  it('names a bad field of a source', () => {
    expect(() => new FileSource({ type: 'file', name: 'kea4', include: [] }, '/tmp', { info: () => {}, error: () => {} }))
      .toThrow(expect.objectContaining({ message: expect.stringContaining('sources.kea4.include') }))
  })

  it('rejects YAML that does not parse, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-cfg-'))
    const f = join(dir, 'bad.yaml')
    writeFileSync(f, 'sources: [\n')
    expect(() => loadConfig(f)).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringContaining('bad.yaml') }))
  })

  it('defaults to SQLite in ./data and, without Kea logs here, the bundled samples', () => {
    const cfg = defaultConfig()
    expect(cfg).toMatchObject({ dataDir: './data', store: { type: 'sqlite' } })
    expect(cfg.sources).toHaveLength(1)
    expect(parseConfig(cfg)).toEqual(cfg)
  })
})
