import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { renderStatus } from '../../src/cli/kea.js'
import type { KeaAnswer } from '../../src/kea/control.js'
import { buildSnapshot, failedSnapshot, summarizeConfig } from '../../src/kea/snapshot.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

const answer = (name: string): KeaAnswer => (JSON.parse(readFileSync(join(KEA_FIXTURES, 'control', `kea-2.2.0-ca-dhcp4-${name}.json`), 'utf8')) as KeaAnswer[])[0] as KeaAnswer

describe('keatrail kea status', () => {
  it('prints servers, HA state and a utilization bar per subnet and shared network', () => {
    const up = buildSnapshot({
      server: 'kea-a', service: 'dhcp4', time: Date.parse('2026-11-26T15:08:28Z'), bucketMs: 30_000,
      status: answer('ha-primary-partner-down-status-get'), version: answer('version-get'), stats: answer('statistic-get-all'),
      statLease: answer('stat-lease4-get'), config: summarizeConfig(answer('config-get'), 'dhcp4')
    })
    const text = renderStatus([up, failedSnapshot('kea-b', 'dhcp4', 0, 30_000, 'unreachable', 'ECONNREFUSED 127.0.0.1:8000')])
    expect(text).toContain('kea-a dhcp4: up, Kea 2.2.0')
    expect(text).toContain('HA hot-standby primary partner-down, partner standby unavailable')
    expect(text).toMatch(/subnet 1 192\.0\.2\.0\/24 +\[########\.{12}\] +40\.0 % {2}8\/20 \(12 free, 0 declined\)/)
    expect(text).toContain('shared network office')
    expect(text).toContain('kea-b dhcp4: UNREACHABLE: ECONNREFUSED')
  })

  it('exits 1 and says why when the server does not answer; a usage error without a target', async () => {
    const r = await runCli(['kea', 'status', '--url', 'http://127.0.0.1:9/', '--server', 'lab'])
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/^lab dhcp4: UNREACHABLE: .*ECONNREFUSED/)
    const usage = await runCli(['kea', 'status'])
    expect(usage.code).toBe(2)
    expect(usage.err).toContain('KEATRAIL_ERR_USAGE')
  })
})
