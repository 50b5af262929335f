import { join } from 'node:path'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { describe, expect, it } from 'vitest'
import { keaOutputs, patternFromKeaConfig, readKeaConfig, stripKeaComments } from '../../src/kea/kea-config.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

const configs = join(KEA_FIXTURES, 'configs')

describe('Kea configuration reading', () => {
  it('removes #, // and /* */ comments but not their look-alikes inside strings', () => {
    const text = '{ # hash\n "a": "x // not a comment # nor this", // slash\n /* block\n spans */ "b": "/* kept */" }'
    expect(JSON.parse(stripKeaComments(text))).toEqual({ a: 'x // not a comment # nor this', b: '/* kept */' })
  })

  it('reads Debian\'s shipped kea-dhcp4.conf and finds its stdout pattern', () => {
    const out = patternFromKeaConfig(join(configs, 'debian-kea-dhcp4.conf'), undefined)
    expect(out).toMatchObject({ daemon: 'Dhcp4', output: 'stdout', pattern: '%-5p %m\n', explicitPattern: true })
  })

  it('reads Debian\'s kea-dhcp6.conf', () => {
    expect(patternFromKeaConfig(join(configs, 'debian-kea-dhcp6.conf'), 'stdout').pattern).toBe('%-5p %m\n')
  })

  it('takes Kea\'s default pattern for an output without one (output_options, ≤ 2.5.0 key)', () => {
    const outs = keaOutputs(readKeaConfig(join(configs, 'kea4-pattern.json')), 'x')
    expect(outs.map((o) => [o.output, o.explicitPattern, o.maxsize, o.maxver])).toEqual([
      ['/var/lib/kea/rot/kea-dhcp4-rot.log', false, 204800, 2],
      ['/var/lib/kea/pattern-all.log', true, 0, undefined]
    ])
    expect(outs[0]!.pattern).toBe('%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i.%t] %m\n')
  })

  it('reads the ≥ 2.5.1 output-options key and syslog defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-'))
    const file = join(dir, 'k.conf')
    writeFileSync(file, '{ "Dhcp6": { "loggers": [ { "name": "kea-dhcp6", "output-options": [ { "output": "syslog:local7" } ] } ] } }')
    expect(patternFromKeaConfig(file, 'syslog').pattern).toBe('%-5p [%c.%t] %m\n')
    expect(patternFromKeaConfig(file, 'syslog:local7').output).toBe('syslog:local7')
  })

  it('selects an output by file name and explains a wrong name', () => {
    expect(patternFromKeaConfig(join(configs, 'kea4-pattern.json'), 'pattern-all.log').output).toBe('/var/lib/kea/pattern-all.log')
    expect(() => patternFromKeaConfig(join(configs, 'kea4-pattern.json'), 'nope.log'))
      .toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_KEA_CONFIG', message: expect.stringContaining('pattern-all.log') }))
    expect(() => patternFromKeaConfig(join(configs, 'kea4-pattern.json'), undefined))
      .toThrow(expect.objectContaining({ message: expect.stringContaining('--output') }))
  })

  it('fails with a code on a missing or broken file', () => {
    expect(() => readKeaConfig('/nonexistent/kea.conf')).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_KEA_CONFIG' }))
    const dir = mkdtempSync(join(tmpdir(), 'kt-'))
    writeFileSync(join(dir, 'bad.conf'), '{ "Dhcp4": ')
    expect(() => readKeaConfig(join(dir, 'bad.conf'))).toThrow(expect.objectContaining({ message: expect.stringContaining('not valid JSON') }))
  })
})
