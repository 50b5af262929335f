import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { writeKeaLog } from '../../bench/lines.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { ROOT } from '../helpers/fixtures.js'
import { expectDerivationOf } from '../helpers/lease-truth.js'
import { metrics, pipelineCounter, rssMiB, SOAK, sleep, sourceCounter, startKeatrail, until, writeConfig } from './harness.js'

// Chaos: Elasticsearch is killed (SIGKILL) in the middle of an ingest, stays down for 60 s,
// and is started again on the same data (it recovers from its translog). The test runs its
// own instance (scripts/elasticsearch.sh with a private KEATRAIL_ES_RUN), so the rest of the
// suite keeps the shared one. keatrail must pause its sources instead of buffering (reading
// stops once the queue is full; RSS stays under its bound), lose nothing, store nothing
// twice, and resume by itself. Then, with the cluster still down, keatrail is killed too and
// started again: it must wait for Elasticsearch rather than exit, and carry on from its
// checkpoint. Soak: three such outages over a larger file.

const esUrl = inject('esUrl')
const RSS_BOUND_MIB = 300
const OUTAGE_MS = 60_000
const exec = promisify(execFile)

describe.skipIf(esUrl === '')(`chaos: Elasticsearch killed for 60 s mid-ingest${esUrl === '' ? ` (skipped: ${inject('esSkipReason')})` : ''}`, () => {
  const run = mkdtempSync(join(tmpdir(), 'kt-chaos-esrun-'))
  const es = async (cmd: 'start' | 'stop' | 'resume'): Promise<string> =>
    (await exec('bash', [join(ROOT, 'scripts', 'elasticsearch.sh'), cmd], { env: { ...process.env, KEATRAIL_ES_RUN: run }, encoding: 'utf8' })).stdout.trim().split('\n').pop() ?? ''
  afterAll(async () => { await es('stop'); rmSync(run, { recursive: true, force: true }) }, 90_000)

  it('pauses the sources, keeps memory bounded, and stores every line once when it returns', async () => {
    const url = await es('start')
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-es-'))
    const log = join(dir, 'kea-dhcp4.log')
    const written = writeKeaLog(log, SOAK ? 600_000 : 60_000, 'info')
    const namespace = `chaos${Date.now().toString(36)}`
    const config = writeConfig(dir, {
      store: { type: 'elasticsearch', url, namespace, retry: { initialMs: 200, maxMs: 2000 } },
      sources: [{ type: 'file', name: 'kea', include: [log], timeZone: 'UTC', pollIntervalMs: 50, batchEvents: 1000 }],
      pipeline: { queueBatches: 4 }
    })
    let kt = startKeatrail(config)
    let api = await kt.apiUrl()
    const acked = (): number => {
      try { return Math.max(0, ...Object.values(JSON.parse(readFileSync(join(dir, 'data', 'state', 'file-kea.json'), 'utf8')) as Record<string, { offset: number }>).map((c) => c.offset)) } catch { return 0 }
    }
    const outages = SOAK ? 3 : 1
    let peakRss = 0
    let retried = 0
    const report: string[] = []
    for (let o = 0; o < outages; o++) {
      // Each keatrail process stores a share of the file before its outage (the counter is its own).
      const share = written.records / (outages + 2)
      expect(await until(async () => pipelineCounter(await metrics(api), 'stored') >= share, 120_000, 100)).toBe(true)
      process.kill(Number(readFileSync(join(run, 'pid'), 'utf8')), 'SIGKILL')
      const down = Date.now()
      const samples: Array<{ at: number, read: number, stored: number }> = []
      while (Date.now() - down < OUTAGE_MS) {
        const m = await metrics(api)
        samples.push({ at: Date.now() - down, read: sourceCounter(m, 'kea', 'received'), stored: pipelineCounter(m, 'stored') })
        peakRss = Math.max(peakRss, rssMiB(kt.proc.pid as number))
        await sleep(500)
      }
      // After the in-flight batches failed and the queue filled (10 s is ample), neither reading
      // nor storing moves until Elasticsearch is back.
      const settled = samples.filter((s) => s.at >= 10_000)
      const first = settled[0]
      const last = settled[settled.length - 1]
      expect(first).toBeDefined()
      expect(last?.read, 'the source stopped reading while Elasticsearch was down').toBe(first?.read)
      expect(last?.stored).toBe(first?.stored)
      expect(last?.read ?? 0, 'the outage came before the end of the file').toBeLessThan(written.bytes)
      report.push(`outage ${o + 1}: reading paused at byte ${last?.read} of ${written.bytes}`)

      // Two faults at once: keatrail killed too, and started again while Elasticsearch is still
      // down. It must wait for the cluster (not exit), then carry on from its checkpoint.
      retried += kt.logs().filter((l) => l.msg === 'Elasticsearch write failed; retrying.').length
      kt.proc.kill('SIGKILL')
      await kt.exited
      kt = startKeatrail(config)
      const restarted = kt
      expect(await until(() => restarted.logs().some((l) => l.msg === 'Elasticsearch not reachable to check templates; waiting for it.'), 30_000)).toBe(true)
      expect(kt.proc.exitCode).toBeNull()
      await es('resume')
      api = await kt.apiUrl()
    }
    expect(await until(() => acked() === written.bytes, 300_000, 250), `checkpoint at ${acked()} of ${written.bytes}`).toBe(true)
    const m = await metrics(api)
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)

    const direct = new ElasticsearchStore({ url, namespace })
    await direct.refresh()
    const count = await direct.count()
    // Lease history too survived the outages: every key's intervals (time, outcome, client)
    // equal one derivation from the whole file.
    const { intervals, keys } = await expectDerivationOf(direct.leases, log)
    await direct.close()
    process.stdout.write(`chaos ES outage: ${written.records} lines, ${outages} × Elasticsearch killed for ${OUTAGE_MS / 1000} s, keatrail killed and restarted while it was down, Elasticsearch restarted; ${report.join('; ')}; ` +
      `stored ${count} events and ${intervals} lease intervals over ${keys} addresses (last process: ${pipelineCounter(m, 'stored')} written, ${pipelineCounter(m, 'duplicates')} already there; ${retried + kt.logs().filter((l) => l.msg === 'Elasticsearch write failed; retrying.').length} failed requests retried); peak RSS ${peakRss.toFixed(0)} MiB\n`)
    expect(count).toBe(written.records)
    expect(acked()).toBe(written.bytes)
    // The killed process had saved what was acknowledged before the outage: the restart re-read
    // only the last unsaved second and the unacknowledged queue, not the whole share.
    expect(pipelineCounter(m, 'duplicates')).toBeLessThan(written.records / (outages + 2) / 2)
    expect(peakRss).toBeLessThan(RSS_BOUND_MIB)
  }, SOAK ? 1_500_000 : 300_000)
})
