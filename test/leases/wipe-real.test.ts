import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeaControlClient } from '../../src/kea/control.js'
import { holderAt } from '../../src/leases/query.js'
import { SubnetMap } from '../../src/leases/wipes.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer } from '../helpers/fixtures.js'
import { hookLibrary, KEA_VERSIONS, KeaLab, keaRuntime, type KeaRuntime } from '../helpers/kea.js'
import { CsvTailer } from '../helpers/lease-truth.js'

// lease4-wipe against each real Kea: leases taken by perfdhcp (Kea's allocation lines name no
// subnet) and two added with lease4-add (subnet-id 1; logged at INFO by 2.2 only), then `lease4-wipe {"subnet-id": 1}` on
// the daemon's control socket. Kea removes them all (its lease file says so); keatrail must end
// the added ones at the wipe and mark the allocated ones, whose subnet its logs never said, as
// gap with the wipe in their evidence — never answer them as plainly held.

const HOST = 'kea-wipe'

KEA_VERSIONS.forEach((version, n) => {
  const found = keaRuntime(version)
  const unavailable = typeof found === 'string' ? found : ''
  const rt = found as KeaRuntime
  describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`lease4-wipe on real Kea ${version}${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `kt-wipe-${version}-`))
    const lab = new KeaLab(`kw${n}${process.pid % 1000}`, dir, rt)
    const tailer = new CsvTailer(lab.leaseFile(4))
    const sock = join(dir, 'sock', 'kea4.sock')
    let store: SqliteStore
    let events: KeaEvent[] = []
    let wipedAt = 0
    let allocated: string[] = []
    const added = ['192.0.2.200', '192.0.2.201']

    beforeAll(async () => {
      if (unavailable !== '') throw new Error(`CI needs real Kea: ${unavailable}`)
      lab.up()
      // Kea 2.6.3 refuses a control socket in a directory whose mode is not 0750.
      mkdirSync(join(dir, 'sock'), { mode: 0o750 })
      chmodSync(join(dir, 'sock'), 0o750)
      const logs = join(dir, 'logs')
      mkdirSync(logs, { recursive: true })
      tailer.start()
      await lab.startKea(4, {
        'control-socket': { 'socket-type': 'unix', 'socket-name': sock },
        'hooks-libraries': [{ library: hookLibrary(rt, 'libdhcp_lease_cmds.so') }],
        'valid-lifetime': 3600,
        subnet4: [{ id: 1, subnet: '192.0.2.0/24', pools: [{ pool: '192.0.2.10 - 192.0.2.29' }] }],
        loggers: [{ name: 'kea-dhcp4', severity: 'INFO', output_options: [{ output: join(logs, 'kea-dhcp4.log') }] }]
      })
      await lab.perfdhcp(['-r', '5', '-R', '5', '-n', '5', '-p', '3'])
      const kea = new KeaControlClient({ name: HOST, socket: sock, services: ['dhcp4'] })
      for (const [i, ip] of added.entries()) {
        const r = await kea.command('lease4-add', 'dhcp4', { 'ip-address': ip, 'hw-address': `1a:1b:1c:1d:1e:${(0x30 + i).toString(16)}`, 'subnet-id': 1 })
        expect(r.result, r.text).toBe(0)
      }
      await new Promise((resolve) => setTimeout(resolve, 1100))
      wipedAt = Date.now()
      const wipe = await kea.command('lease4-wipe', 'dhcp4', { 'subnet-id': 1 })
      expect(wipe.result, wipe.text).toBe(0)
      await new Promise((resolve) => setTimeout(resolve, 1100))
      await lab.stopDaemons()
      tailer.stop()
      const text = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')).join('')
      events = (await parseBuffer(text, { host: HOST, path: `${HOST}/kea-dhcp4.log`, timeZone: 'UTC' })).events
      store = new SqliteStore({ path: join(dir, 'data', 'keatrail.db') })
      await store.write(events)
      allocated = [...new Set(events.filter((e) => e.event.action === 'allocate').map((e) => e.kea.lease?.address ?? e.client?.ip ?? ''))].filter((a) => a !== '')
    }, 120_000)

    afterAll(async () => {
      await store?.close()
      lab.down()
    })

    it('Kea logged the wipe with its subnet, and removed every lease (its lease file)', () => {
      const wipes = events.filter((e) => e.event.action === 'lease-wipe')
      expect(wipes.length).toBeGreaterThan(0)
      for (const w of wipes) expect(w.kea.subnet_id, w.event.original).toBe(1)
      expect(allocated.length).toBeGreaterThan(2)
      // A removal row (valid lifetime 0) for each lease, written at the wipe.
      const col = (name: string): number => tailer.header.indexOf(name)
      const removed = new Set(tailer.rows.filter((r) => r.fields[col('valid_lifetime')] === '0' && r.at >= wipedAt - 1000).map((r) => r.fields[col('address')]))
      for (const ip of [...added, ...allocated]) expect(removed, ip).toContain(ip)
    })

    it('with the Kea subnets configured (leases.subnets), the allocated leases end at the wipe too', async () => {
      const mapped = new SqliteStore({ path: join(dir, 'mapped', 'keatrail.db') }, new SubnetMap([{ server: HOST, id: 1, prefix: '192.0.2.0/24' }]))
      try {
        await mapped.write(events)
        for (const ip of allocated) {
          const a = await holderAt(mapped.leases, ip, wipedAt + 1000, HOST)
          expect(a.holders, ip).toEqual([])
          expect([a.before?.end_reason, a.before?.certainty], ip).toEqual(['wiped', 'observed'])
        }
      } finally {
        await mapped.close()
      }
    })

    it('a lease added with its subnet ends at the wipe; an allocated one is marked gap, with the wipe as evidence', async () => {
      const wipeIds = new Set(events.filter((e) => e.event.action === 'lease-wipe').map((e) => e.event.id))
      const after = wipedAt + 1000
      // Kea 2.2 logs lease4-add at INFO with its arguments; from 2.4 only at DEBUG: a lease
      // keatrail never saw is nobody's in its answers, wiped or not.
      const addLogged = (ip: string): boolean => events.some((e) => e.event.action === 'lease-add' && e.kea.lease?.address === ip)
      expect(added.every(addLogged)).toBe(version === '2.2')
      for (const ip of added) {
        const a = await holderAt(store.leases, ip, after, HOST)
        expect(a.holders, ip).toEqual([])
        if (!addLogged(ip)) { expect(a.before, ip).toBeUndefined(); continue }
        expect(a.before?.end_reason, ip).toBe('wiped')
        expect(wipeIds.has(a.before?.evidence.at(-1) ?? ''), ip).toBe(true)
        expect(Math.abs(Date.parse(a.before?.end ?? '') - wipedAt), ip).toBeLessThan(1000)
      }
      for (const ip of allocated) {
        const a = await holderAt(store.leases, ip, after, HOST)
        expect(a.holders.map((h) => h.certainty), ip).toEqual(['gap'])
        expect(a.holders[0]?.evidence.some((id) => wipeIds.has(id)), ip).toBe(true)
      }
    })
  })
})
