import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { KeaAnswer } from '../../src/kea/control.js'
import { buildSnapshot, cutText, failedSnapshot, MAX_ERROR_TEXT, summarizeConfig } from '../../src/kea/snapshot.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// Real answers of kea-ctrl-agent 2.2 in front of kea-dhcp4 (lease_cmds + stat_cmds) after
// perfdhcp took 8 of 20 addresses of subnet 1; subnet 2 sits in shared network "office".
const answer = (name: string): KeaAnswer => (JSON.parse(readFileSync(join(KEA_FIXTURES, 'control', `kea-2.2.0-ca-dhcp4-${name}.json`), 'utf8')) as KeaAnswer[])[0] as KeaAnswer

describe('snapshots from real Kea answers', () => {
  const config = summarizeConfig(answer('config-get'), 'dhcp4')
  const time = Date.parse('2026-11-26T15:08:28Z')

  it('summarizes config-get: subnets with prefixes and shared networks, and a stable hash', () => {
    expect(config.subnets).toEqual([{ id: 1, subnet: '192.0.2.0/24' }, { id: 2, subnet: '198.51.100.0/24', shared_network: 'office' }])
    expect(config.hash).toMatch(/^[0-9a-f]{64}$/)
    const reordered = answer('config-get')
    const dhcp4 = (reordered.arguments as { Dhcp4: Record<string, unknown> }).Dhcp4
    const shuffled = Object.fromEntries(Object.entries(dhcp4).reverse())
    expect(summarizeConfig({ result: 0, arguments: { Dhcp4: shuffled } }, 'dhcp4').hash).toBe(config.hash)
  })

  it('derives utilization per subnet and shared network, server state and packet counters', () => {
    const s = buildSnapshot({
      server: 'kea-a', service: 'dhcp4', time, bucketMs: 30_000, config,
      status: answer('status-get'), version: answer('version-get'), stats: answer('statistic-get-all'), statLease: answer('stat-lease4-get')
    })
    expect(s).toMatchObject({ server: 'kea-a', service: 'dhcp4', state: 'up', version: '2.2.0', multi_threading: false, config_hash: config.hash })
    expect(s.id).toBe('kea-a|dhcp4|1795705680000')
    expect(s.subnets).toEqual([
      { id: 1, subnet: '192.0.2.0/24', total: 20, assigned: 8, declined: 0, free: 12, utilization: 40 },
      { id: 2, subnet: '198.51.100.0/24', shared_network: 'office', total: 11, assigned: 0, declined: 0, free: 11, utilization: 0 }
    ])
    expect(s.shared_networks).toEqual([{ name: 'office', total: 11, assigned: 0, declined: 0, free: 11, utilization: 0 }])
    expect(s.totals).toEqual({ total: 31, assigned: 8, declined: 0, free: 23, utilization: 25.81 })
    expect(s.packets['pkt4-ack-sent']).toBe(14)
  })

  it('falls back to statistic-get-all when the stat_cmds hook is not loaded', () => {
    const s = buildSnapshot({ server: 'kea-a', service: 'dhcp4', time, bucketMs: 30_000, config, status: answer('status-get'), stats: answer('statistic-get-all'), statLease: answer('nonsense') })
    expect(s.subnets.map((u) => [u.id, u.total, u.assigned])).toEqual([[1, 20, 8], [2, 11, 0]])
  })

  it('records an unreachable server as a snapshot with the error', () => {
    const down = answer('status6-down')
    expect(down.result).toBe(1)
    const s = failedSnapshot('kea-a', 'dhcp6', time, 30_000, 'kea', down.text as string)
    expect(s).toMatchObject({ state: 'error', error: { kind: 'kea', message: expect.stringContaining('unable to forward command to the dhcp6 service') } })
  })
})

describe('bounds on what a hostile answer can make a snapshot cost', () => {
  const time = Date.parse('2026-11-26T15:08:28Z')

  it('the config hash of a config nested 100,000 levels deep: no stack overflow', () => {
    let deep: unknown = { leaf: true }
    for (let i = 0; i < 100_000; i++) deep = i % 2 === 0 ? [deep, 1] : { k: deep }
    const s = summarizeConfig({ result: 0, arguments: { Dhcp4: { subnet4: [{ id: 1, subnet: '192.0.2.0/24', 'user-context': deep }] } } }, 'dhcp4')
    expect(s.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(s.subnets).toEqual([{ id: 1, subnet: '192.0.2.0/24' }])
  })

  it('the config hash is the one earlier versions computed (stored hashes stay comparable)', () => {
    expect(summarizeConfig(answer('config-get'), 'dhcp4').hash).toBe('df24d5be4f69d219c0ca7aff052dce16d3703039a463de639986ad8f0e863f09')
  })

  it('error texts and version strings are cut to MAX_ERROR_TEXT, saying how much was cut', () => {
    const s = failedSnapshot('kea-a', 'dhcp4', time, 30_000, 'kea', `x${'😀'.repeat(1_000_000)}`)
    expect(s.error?.message).toMatch(/… \[cut: \d+ more characters\]$/)
    expect(s.error?.message.length).toBeLessThan(MAX_ERROR_TEXT + 100)
    expect(s.error?.message).not.toMatch(/[\ud800-\udbff]…/)
    expect(cutText('short')).toBe('short')
    const v = buildSnapshot({ server: 'kea-a', service: 'dhcp4', time, bucketMs: 30_000, status: answer('status-get'), version: { result: 0, text: 'v'.repeat(5_000_000) } })
    expect(v.version?.length).toBeLessThan(MAX_ERROR_TEXT + 100)
  })

  it('a stat_cmds result-set that is not a table is ignored, not a crash', () => {
    for (const rs of [{ columns: 'subnet-id', rows: [[1]] }, { columns: ['subnet-id'], rows: [null, 7, [1]] }, { columns: ['subnet-id'], rows: 'x' }]) {
      const s = buildSnapshot({ server: 'kea-a', service: 'dhcp4', time, bucketMs: 30_000, status: answer('status-get'), stats: answer('statistic-get-all'), statLease: { result: 0, arguments: { 'result-set': rs } } })
      expect(s.subnets.map((u) => u.id)).toContain(1)
    }
  })
})
