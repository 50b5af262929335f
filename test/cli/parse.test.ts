import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { runCli as run } from '../helpers/cli.js'
import { describe, expect, it } from 'vitest'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'


const INFO4 = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')

describe('keatrail parse', () => {
  it('writes one JSON event per record and prints stats', async () => {
    const r = await run(['parse', '--tz', 'UTC', '--stats', INFO4])
    expect(r.code).toBe(0)
    const events = r.out.trim().split('\n').map((l) => JSON.parse(l) as { event: { code: string } })
    expect(events).toHaveLength(206)
    expect(r.err).toContain('status ok 206  partial 0  unmatched 0')
    expect(r.err).toMatch(/\d+ {2}DHCP4_LEASE_ALLOC/)
  })

  it('reads stdin', async () => {
    const line = '2026-11-24 09:16:16.851 INFO  [kea-dhcp4.leases/1.2] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 40 seconds\n'
    const r = await run(['parse', '--tz', 'UTC', '-'], line)
    expect(JSON.parse(r.out)).toMatchObject({ event: { action: 'allocate' }, client: { ip: '192.0.2.10', mac: '02-00-00-00-00-0A' } })
  })

  it('reads gzip\'d rotated files', async () => {
    const r = await run(['parse', '--tz', 'UTC', '-q', '--stats', join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-DEBUG99-full.log.gz')])
    expect(r.out).toBe('')
    expect(r.err).toContain('unmatched 0')
  })

  it('takes the pattern from a Kea config output', async () => {
    const r = await run(['parse', '--kea-config', join(KEA_FIXTURES, 'configs', 'kea4-pattern.json'), '--output', 'pattern-all.log',
      '--tz', 'UTC', '-q', '--stats', join(KEA_FIXTURES, 'kea-2.2.0-all-pattern-specifiers.txt')])
    expect(r.err).toContain('status ok 14  partial 1  unmatched 0')
  })

  it('accepts built-in pattern names', async () => {
    const r = await run(['parse', '--pattern', 'kea-syslog', '-q', '--stats', join(KEA_FIXTURES, 'golden', 'syslog-payloads.log')])
    expect(r.err).toContain('unmatched 0')
  })

  it('fails at start, with a code, on a bad pattern, a bad zone, conflicting options, a missing file', async () => {
    expect(await run(['parse', '--pattern', '%d %Z %m', INFO4])).toMatchObject({ code: 2, err: expect.stringContaining('KEATRAIL_ERR_PATTERN_UNSUPPORTED') })
    expect(await run(['parse', '--tz', 'Nowhere/Land', INFO4])).toMatchObject({ code: 2, err: expect.stringContaining('KEATRAIL_ERR_TIMEZONE_INVALID') })
    expect(await run(['parse', '--pattern', 'kea-file', '--kea-config', 'x.json', INFO4])).toMatchObject({ code: 2, err: expect.stringContaining('KEATRAIL_ERR_USAGE') })
    expect(await run(['parse', '/nonexistent.log'])).toMatchObject({ code: 2, err: expect.stringContaining('KEATRAIL_ERR_INPUT_READ') })
  })

  it('runs as the installed binary (the README command)', () => {
    const out = execFileSync(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'parse', '--tz', 'UTC', '--stats', '-q', INFO4], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    expect(out).toBe('')
  })
})
