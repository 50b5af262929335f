import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/config/config.js'
import { defaultConfig } from '../../src/cli/run.js'
import { applyOverrides, resolveConfig } from '../../src/app/config.js'
import { FileSource } from '../../src/sources/file/source.js'

describe('keatrail config', () => {
  it('names an unknown key with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-cfg-'))
    const f = join(dir, 'keatrail.yaml')
    writeFileSync(f, 'sources:\n  - type: file\n    name: k\n    include: [/var/log/kea/kea-dhcp4.log*]\n    follow: yes\n')
    expect(() => loadConfig(f)).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringMatching(/keatrail\.yaml: sources\.0.*follow/) }))
  })

  it('takes Kea subnets for lease wipes, and names a prefix that is not one', () => {
    const ok = parseConfig({ leases: { subnets: [{ server: 'kea-a', id: 1, prefix: '192.0.2.0/24' }, { server: 'kea-a', id: 2, prefix: '2001:db8:1::/64' }] } })
    expect(ok.leases.subnets).toHaveLength(2)
    expect(parseConfig({}).leases.subnets).toEqual([])
    expect(() => parseConfig({ leases: { subnets: [{ server: 'kea-a', id: 1, prefix: '192.0.2.7' }] } }))
      .toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringMatching(/leases\.subnets\.0\.prefix.*prefix such as/) }))
  })

  it('takes lease domains, and refuses a server in two of them or a domain named like another\'s server', () => {
    const ok = parseConfig({ leases: { domains: [{ name: 'ha-pair', servers: ['kea-a', 'kea-b'] }] } })
    expect(ok.leases.domains).toEqual([{ name: 'ha-pair', servers: ['kea-a', 'kea-b'] }])
    expect(parseConfig({}).leases.domains).toEqual([])
    const bad = (domains: unknown, message: RegExp): void => {
      expect(() => parseConfig({ leases: { domains } })).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringMatching(message) }))
    }
    bad([{ name: 'p1', servers: ['kea-a', 'kea-b'] }, { name: 'p2', servers: ['kea-b', 'kea-c'] }], /leases\.domains\.1\.servers.*kea-b is in lease domains p1 and p2/)
    bad([{ name: 'p1', servers: ['kea-a', 'kea-b'] }, { name: 'p1', servers: ['kea-c', 'kea-d'] }], /leases\.domains\.1\.name.*configured twice/)
    bad([{ name: 'kea-c', servers: ['kea-a', 'kea-b'] }, { name: 'p2', servers: ['kea-c', 'kea-d'] }], /leases\.domains\.0\.name.*named like a server of lease domain p2/)
    bad([{ name: 'p1', servers: ['kea-a'] }], /leases\.domains\.0\.servers/)
    bad([{ name: 'p1', servers: ['kea-a', 'kea-a'] }], /leases\.domains\.0\.servers.*needs two servers/)
    bad([{ name: '*', servers: ['kea-a', 'kea-b'] }], /leases\.domains\.0\.name.*every server/)
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

describe('flags over the config file (src/app/config.ts)', () => {
  it('switches the store kind, takes the URL from the flag, the file or KEATRAIL_ES_URL, and credentials from the environment', () => {
    expect(applyOverrides({ store: { type: 'sqlite', cacheMiB: 64 } }, { store: 'elasticsearch', esUrl: 'http://es:9200' }, {}).store).toEqual({ type: 'elasticsearch', url: 'http://es:9200' })
    expect(applyOverrides({ store: { type: 'elasticsearch', url: 'http://file:9200', namespace: 'a' } }, { esNamespace: 'b' }, { KEATRAIL_ES_API_KEY: 'k' }).store)
      .toEqual({ type: 'elasticsearch', url: 'http://file:9200', namespace: 'b', apiKey: 'k' })
    expect(applyOverrides({}, { store: 'elasticsearch' }, { KEATRAIL_ES_URL: 'http://env:9200', KEATRAIL_ES_USERNAME: 'u', KEATRAIL_ES_PASSWORD: 'p' }).store)
      .toEqual({ type: 'elasticsearch', url: 'http://env:9200', username: 'u', password: 'p' })
  })

  it('names what is missing or contradictory as a usage error', () => {
    expect(() => applyOverrides({}, { store: 'elasticsearch' }, {})).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_USAGE', message: expect.stringContaining('--es-url') }))
    expect(() => applyOverrides({}, { esUrl: 'http://es:9200' }, {})).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_USAGE', message: expect.stringContaining('--store elasticsearch') }))
    expect(() => applyOverrides({}, { store: 'postgres' }, {})).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_USAGE' }))
  })

  it('a mistake in the file is named with the file; one the flags make, with the options', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-cfg-'))
    const f = join(dir, 'keatrail.yaml')
    writeFileSync(f, 'api: { port: 8081 }\nlog: { level: loud }\n')
    expect(() => resolveConfig(f, {})).toThrow(expect.objectContaining({ message: expect.stringContaining('keatrail.yaml: log.level') }))
    writeFileSync(f, 'api: { port: 8081 }\n')
    expect(resolveConfig(f, { dataDir: '/srv/kt' })).toMatchObject({ dataDir: '/srv/kt', api: { port: 8081 } })
    expect(() => resolveConfig(f, { logLevel: 'loud' })).toThrow(expect.objectContaining({ message: expect.stringMatching(/with the command-line options: log\.level/) }))
  })
})
