import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { AlertEngine, alertEvent, alertsConfigSchema, Webhook, type PoolAlert } from '../../src/kea/alerts.js'
import type { KeaSnapshot } from '../../src/kea/snapshot.js'
import { keaEventSchema } from '../../src/parse/event.js'

function snap (assigned: number, total = 100, network?: string): KeaSnapshot {
  const u = { id: 1, subnet: '192.0.2.0/24', ...(network === undefined ? {} : { shared_network: network }), total, assigned, declined: 0, free: total - assigned, utilization: (100 * assigned) / total }
  return {
    '@timestamp': new Date(Date.UTC(2026, 10, 24, 4, assigned)).toISOString(), id: 'x', server: 'kea-a', service: 'dhcp4', state: 'up',
    subnets: [u], shared_networks: network === undefined ? [] : [{ name: network, total, assigned, declined: 0, free: total - assigned, utilization: u.utilization }],
    totals: { total, assigned, declined: 0, free: total - assigned, utilization: u.utilization }, packets: {}
  }
}

describe('pool depletion alerts', () => {
  it('fire once per level, and clear only below the threshold minus the hysteresis', () => {
    const e = new AlertEngine(alertsConfigSchema.parse({}))
    const seq = [50, 79, 80, 83, 79, 76, 95, 99, 93, 91, 89, 80, 76, 74, 10]
    const fired = seq.flatMap((a) => e.evaluate(snap(a)).map((x) => `${a}:${x.previous}->${x.level}`))
    expect(fired).toEqual(['80:none->warn', '95:warn->critical', '89:critical->warn', '74:warn->none'])
  })

  it('per-subnet overrides; shared networks alert on their own; unreachable snapshots never do', () => {
    const e = new AlertEngine(alertsConfigSchema.parse({ overrides: [{ subnet_id: 1, warn: 50, critical: 60 }] }))
    const out = e.evaluate(snap(55, 100, 'office'))
    expect(out.map((a) => [a.scope, a.level])).toEqual([['subnet 1 (192.0.2.0/24)', 'warn']])
    expect(e.evaluate(snap(85, 100, 'office')).map((a) => [a.scope, a.level])).toEqual([['subnet 1 (192.0.2.0/24)', 'critical'], ['shared network office', 'warn']])
    expect(e.evaluate({ ...snap(100), state: 'unreachable' })).toEqual([])
  })

  it('after a restart, primed from the last snapshot, a pool already full does not alert again', () => {
    const e = new AlertEngine(alertsConfigSchema.parse({}))
    e.prime([snap(97)])
    expect(e.evaluate(snap(98))).toEqual([])
  })

  it('is stored as a valid event of kind alert', () => {
    const [a] = new AlertEngine(alertsConfigSchema.parse({})).evaluate(snap(96))
    const ev = alertEvent(a as PoolAlert)
    expect(keaEventSchema.parse(ev)).toEqual(ev)
    expect(ev).toMatchObject({ event: { kind: 'alert', code: 'KEATRAIL_POOL_DEPLETION_CRITICAL' }, host: { name: 'kea-a' }, kea: { subnet_id: 1 } })
    expect(ev.message).toBe('Pool depletion critical: subnet 1 (192.0.2.0/24) on kea-a/dhcp4 is 96.0 % used (96 of 100 addresses, 4 free)')
  })

  it('webhook: retried until delivered; given up after the retries and logged', async () => {
    let calls = 0
    const bodies: unknown[] = []
    const server = createServer((req, res) => {
      let b = ''
      req.on('data', (c: Buffer) => { b += c.toString() })
      req.on('end', () => { calls++; if (calls < 3) { res.statusCode = 503; res.end() } else { bodies.push(JSON.parse(b)); res.end('ok') } })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    const errors: string[] = []
    const log = { info: () => {}, error: (code: string) => { errors.push(code) } }
    const [a] = new AlertEngine(alertsConfigSchema.parse({})).evaluate(snap(90))
    const hook = new Webhook({ url, timeoutMs: 1000, retries: 3, headers: {} }, log)
    hook.send(a as PoolAlert)
    await hook.flush()
    expect(calls).toBe(3)
    expect(bodies[0]).toMatchObject({ type: 'keatrail.pool_depletion', level: 'warn', server: 'kea-a', subnet_id: 1 })
    const failing = new Webhook({ url: 'http://127.0.0.1:9/none', timeoutMs: 300, retries: 1, headers: {} }, log)
    failing.send(a as PoolAlert)
    await failing.flush()
    expect(failing.counters).toEqual({ sent: 0, failed: 1, dropped: 0 })
    expect(errors).toEqual(['KEATRAIL_ERR_WEBHOOK'])
    server.close()
  })
})
