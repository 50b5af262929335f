import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCli as run } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// Operator mistakes (issue 18): each is one line with a stable code and a non-zero exit, never
// a silent wrong answer, a stack or a dump.

const INFO4 = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')

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
