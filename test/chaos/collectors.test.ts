import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeKeaLog } from '../../bench/lines.js'
import { engineStore, searchEngines } from '../helpers/engines.js'
import { expectDerivationOf } from '../helpers/lease-truth.js'
import { metrics, pipelineCounter, startKeatrail, until, writeConfig } from './harness.js'

// Issue 21: several keatrail collectors write into one cluster at once, one per Kea server (the
// README's rule for scaling out). Each server's lease history is its own scope, derived by the
// collector of that server alone: with both writing concurrently into one namespace, each
// scope must still hold exactly one derivation of its server's whole log, and every event once.

const LINES = 20_000

for (const engine of searchEngines()) {
  describe.skipIf(engine.skip !== '' && process.env.CI !== 'true')(`two collectors write into one ${engine.name} at once${engine.skip === '' ? '' : ` (skipped: ${engine.skip})`}`, () => {
    it('each server\'s lease history equals one derivation of its own log; every event stored once', async () => {
      const namespace = `collectors${Date.now().toString(36)}`
      // The same addresses and clients in both logs, at overlapping times: the worst case for
      // histories that must not mix.
      const servers = ['kea-a', 'kea-b'].map((host, i) => {
        const dir = mkdtempSync(join(tmpdir(), `kt-collector-${host}-`))
        const log = join(dir, 'kea-dhcp4.log')
        const written = writeKeaLog(log, LINES, 'info', { startMs: Date.UTC(2026, 10, 24, 9) + i * 1500 })
        const config = writeConfig(dir, {
          store: { type: engine.name, url: engine.url, namespace, retry: { initialMs: 200, maxMs: 2000 } },
          sources: [{ type: 'file', name: 'kea', include: [log], host, timeZone: 'UTC', pollIntervalMs: 50, batchEvents: 500 }]
        })
        return { host, dir, log, written, kt: startKeatrail(config) }
      })
      const apis = await Promise.all(servers.map(async (s) => await s.kt.apiUrl()))
      const acked = (dir: string): number => {
        try { return Math.max(0, ...Object.values(JSON.parse(readFileSync(join(dir, 'data', 'state', 'file-kea.json'), 'utf8')) as Record<string, { offset: number }>).map((c) => c.offset)) } catch { return 0 }
      }
      expect(await until(() => servers.every((s) => acked(s.dir) === s.written.bytes), 300_000, 250)).toBe(true)
      for (const [i, s] of servers.entries()) {
        expect(pipelineCounter(await metrics(apis[i] as string), 'deadLettered')).toBe(0)
        s.kt.proc.kill('SIGTERM')
        expect(await s.kt.exited).toBe(0)
      }

      const direct = engineStore(engine, { namespace })
      await direct.refresh()
      expect(await direct.count()).toBe(servers[0]!.written.records + servers[1]!.written.records)
      let compared = 0
      for (const s of servers) {
        const { intervals, keys } = await expectDerivationOf(direct.leases, s.log, s.host)
        expect(keys).toBeGreaterThan(50)
        compared += intervals
      }
      await direct.close()
      process.stdout.write(`two collectors into one ${engine.name}: ${servers.map((s) => `${s.host} ${s.written.records} lines`).join(', ')}; ${compared} lease intervals match one derivation per server\n`)
    }, 400_000)
  })
}
