import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import type { KeaEvent, LeaseAction } from '../../src/parse/event.js'
import { patternFromKeaConfig } from '../../src/kea/kea-config.js'
import { resolvePattern } from '../../src/parse/patterns.js'
import { excerptToLog, KEA_FIXTURES, parseBuffer, SHARED, skipWithout } from '../helpers/fixtures.js'

// Every real Kea sample, committed (test/fixtures/kea) and shared (../shared/kea/samples, when
// present): no Kea header goes unmatched, and every lease-lifecycle record carries its action,
// the client identifiers its text shows, and its address.

const ALL_PATTERN = 'd=[%d] D=[%D] D{q}=[%D{%Y-%m-%dT%H:%M:%S.%q%z}] D{Q}=[%D{%H:%M:%S.%Q}] D{s}=[%D{%s}] p=[%p] -5p=[%-5p] c=[%c] c{1}=[%c{1}] .10c=[%.10c] 20c=[%20c] i=[%i] t=[%t] T=[%T] h=[%h] H=[%H] r=[%r] b=[%b] F=[%F] L=[%L] l=[%l] M=[%M] x=[%x] X=[%X] E=[%E{RS_TEST_ENV}] .-12m=[%.-12m] m=[%m]%n'

/** Python repr of a datagram ('<134>Nov 24 …: INFO  […] …\n') → the Kea payload after the tag. */
function syslogPayloads (text: string): string {
  const out: string[] = []
  for (const line of text.split('\n')) {
    const m = /^'(.*)'$/.exec(line.trim())
    if (m === null) continue
    const s = (m[1] as string).replace(/\\(x[0-9a-f]{2}|n|t|r|\\|')/g, (_, e: string) =>
      e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === '\\' ? '\\' : e === "'" ? "'" : String.fromCharCode(parseInt(e.slice(1), 16)))
    const p = /^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d [^:]+: ([\s\S]*)$/.exec(s)
    if (p !== null) out.push((p[1] as string).replace(/\n$/, ''))
  }
  return out.join('\n') + '\n'
}

interface Sample { name: string, text: Buffer, pattern: string, allowPartial?: number }

function samplesIn (dir: string): Sample[] {
  const out: Sample[] = []
  const walk = (d: string, prefix: string): void => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, f.name)
      const name = prefix + f.name
      if (f.isDirectory()) { if (f.name !== 'configs') walk(path, name + '/'); continue }
      const raw = readFileSync(path)
      if (/\.log(\.gz)?$/.test(f.name)) {
        const text = f.name.endsWith('.gz') ? gunzipSync(raw) : raw
        const config = join(d, f.name.replace(/-INFO-custom\.log$/, '-info.json'))
        const pattern = f.name.endsWith('-custom.log') && existsSync(config)
          ? patternFromKeaConfig(config, f.name).pattern
          : resolvePattern('kea-file')
        out.push({ name, text, pattern })
      } else if (/-lease-(events|reuse)\.txt$/.test(f.name)) {
        out.push({ name, text: Buffer.from(excerptToLog(raw.toString())), pattern: resolvePattern('kea-file') })
      } else if (f.name.endsWith('syslog-datagrams-repr.txt')) {
        out.push({ name, text: Buffer.from(syslogPayloads(raw.toString())), pattern: resolvePattern('kea-syslog') })
      } else if (f.name.endsWith('all-pattern-specifiers.txt')) {
        // Its second line was cut off in the capture: one record can only be partial.
        out.push({ name, text: raw, pattern: ALL_PATTERN, allowPartial: 1 })
      }
      // kea-2.2.0-rotation-demo.txt is an `ls` listing with a cut-off excerpt, not a log.
    }
  }
  walk(dir, '')
  return out
}

const NEEDS_ADDRESS = new Set<LeaseAction>(['offer', 'allocate', 'renew', 'reuse', 'release', 'decline', 'decline-recovered', 'reclaim',
  'revoke', 'lease-add', 'lease-update', 'lease-delete', 'release-fail', 'decline-fail'])
const SHOWS_CLIENT = /\[hwtype=\d+ [0-9a-f]|cid=\[[0-9a-f]|duid=\[[0-9a-f]|"hw-address"|"duid"|"client-id"/

function leaseProblems (events: KeaEvent[]): string[] {
  const problems: string[] = []
  for (const e of events) {
    const action = e.event.action
    if (action === undefined) continue
    const k = e.kea
    if (SHOWS_CLIENT.test(e.message) && k.hwaddr === undefined && k.client_id === undefined && k.duid === undefined) problems.push(`no client identifier: ${e.message}`)
    if (NEEDS_ADDRESS.has(action) && k.lease?.address === undefined && k.lease?.prefix === undefined) problems.push(`no address: ${e.message}`)
    if (action === 'nak' && /requested-ip-address \d|address \d/.test(e.message) && k.requested_address === undefined) problems.push(`no requested address: ${e.message}`)
  }
  return problems
}

function check (samples: Sample[]): void {
  expect(samples.length).toBeGreaterThan(5)
  for (const s of samples) {
    it(s.name, async () => {
      const { events, stats } = await parseBuffer(s.text, { pattern: s.pattern, timeZone: 'UTC' })
      expect(stats.status.unmatched, 'unmatched headers').toBe(0)
      expect(stats.status.partial).toBeLessThanOrEqual(s.allowPartial ?? 0)
      expect(leaseProblems(events)).toEqual([])
    })
  }
}

describe('every committed Kea sample parses completely', () => {
  check(samplesIn(KEA_FIXTURES).filter((s) => !s.name.startsWith('golden/')))
})

const shared = join(SHARED, 'kea', 'samples')
describe.skipIf(skipWithout(shared))(`every sample in ../shared/kea/samples parses completely${existsSync(shared) ? '' : ` (${shared} is absent: skipped locally, fails with CI=true)`}`, () => {
  it('has the shared samples', () => {
    expect(existsSync(shared), `${shared} is absent (set KEATRAIL_SHARED_DIR, or check out ../shared)`).toBe(true)
  })
  if (existsSync(shared)) check(samplesIn(shared))
})

describe('the lease checks themselves', () => {
  it('flag a lease record without its address or client', () => {
    const e = { message: 'DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:0a], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 40 seconds', event: { action: 'allocate' }, kea: {} } as unknown as KeaEvent
    expect(leaseProblems([e])).toHaveLength(2)
  })
})
