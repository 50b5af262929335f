import { z } from 'zod'
import { LOG_CODES } from '../errors.js'
import { Backoff } from '../backoff.js'
import { memfileIntervals, rowsFromLeaseCommand } from '../leases/memfile.js'
import { seedKeaState } from '../leases/seed.js'
import type { Log } from '../pipeline/types.js'
import type { Store } from '../store/types.js'
import { AlertEngine, alertEvent, alertsConfigSchema, Webhook, type PoolAlert } from './alerts.js'
import { KeaCommandError, KeaControlClient, keaServerConfigSchema, type KeaAnswer, type KeaService } from './control.js'
import { buildSnapshot, failedSnapshot, summarizeConfig, type ConfigSummary, type KeaSnapshot } from './snapshot.js'

export const keaConfigSchema = z.object({
  servers: z.array(keaServerConfigSchema).default([]).describe('Kea servers to take status snapshots of'),
  alerts: alertsConfigSchema.prefault({}).describe('Pool depletion alerts')
}).strict()

export type KeaConfig = z.output<typeof keaConfigSchema>

/** Longest wait between attempts while a server is down. */
const MAX_BACKOFF_MS = 300_000
const LEASE_PAGE = 1000
const MAX_LEASE_PAGES = 10_000

/** What the poller remembers of one daemon between polls. */
interface DaemonState {
  pid?: number
  reload?: number
  version?: KeaAnswer
  config?: ConfigSummary
  /** stat_cmds answered "unsupported": ask again only after a restart or reload. */
  noStatCmds?: boolean
}

export interface PollResult { snapshots: KeaSnapshot[], alerts: PoolAlert[] }

/**
 * Takes snapshots of Kea servers on their interval (with jitter; doubling backoff up to 5
 * minutes while a server is down, each failed attempt recorded as an "unreachable" snapshot),
 * stores them, evaluates pool alerts and optionally seeds lease history from Kea's leases.
 * Servers are polled independently: a hanging one does not delay the others.
 */
export class KeaPoller {
  readonly clients: KeaControlClient[]
  readonly alerts: AlertEngine
  readonly webhook: Webhook | undefined
  readonly counters = { polls: 0, failures: 0, snapshots: 0, alerts: 0, leasesSeeded: 0 }
  private readonly state = new Map<string, DaemonState>()

  constructor (readonly cfg: KeaConfig, private readonly store: Store | undefined, private readonly log: Log, private readonly now: () => number = Date.now) {
    this.clients = cfg.servers.map((s) => new KeaControlClient(s))
    this.alerts = new AlertEngine(cfg.alerts)
    this.webhook = cfg.alerts.webhook === undefined ? undefined : new Webhook(cfg.alerts.webhook, log)
  }

  /** One snapshot per service of one server, now. Nothing is stored. */
  async snapshot (client: KeaControlClient): Promise<KeaSnapshot[]> {
    const out: KeaSnapshot[] = []
    for (const service of client.cfg.services) out.push(await this.snapshotOf(client, service))
    return out
  }

  private async snapshotOf (client: KeaControlClient, service: KeaService): Promise<KeaSnapshot> {
    const name = client.cfg.name
    const time = this.now()
    const bucket = client.cfg.intervalMs
    const key = `${name}|${service}`
    const st = this.state.get(key) ?? {}
    this.state.set(key, st)
    try {
      const status = await client.command('status-get', service)
      if (status.result !== 0) {
        // The Control Agent could not reach the daemon behind it: that daemon is unreachable.
        const offline = /unable to forward|offline|No such file|Connection refused/i.test(status.text ?? '')
        return failedSnapshot(name, service, time, bucket, offline ? 'unreachable' : 'kea', status.text ?? `result ${status.result}`)
      }
      const args = status.arguments ?? {}
      const pid = typeof args.pid === 'number' ? args.pid : undefined
      const reload = typeof args.reload === 'number' ? args.reload : undefined
      const restarted = pid !== st.pid || (reload !== undefined && st.reload !== undefined && reload < st.reload)
      if (restarted) { delete st.version; delete st.config; delete st.noStatCmds }
      if (pid !== undefined) st.pid = pid
      if (reload !== undefined) st.reload = reload
      st.version ??= await client.command('version-get', service)
      if (st.config === undefined) {
        const cfg = await client.command('config-get', service)
        if (cfg.result === 0) st.config = summarizeConfig(cfg, service)
      }
      const stats = await client.command('statistic-get-all', service)
      let statLease: KeaAnswer | undefined
      if (st.noStatCmds !== true) {
        statLease = await client.command(service === 'dhcp4' ? 'stat-lease4-get' : 'stat-lease6-get', service)
        if (statLease.result === 2) st.noStatCmds = true
      }
      return buildSnapshot({
        server: name, service, time, bucketMs: bucket, status, stats,
        ...(st.version === undefined ? {} : { version: st.version }),
        ...(statLease === undefined ? {} : { statLease }),
        ...(st.config === undefined ? {} : { config: st.config })
      })
    } catch (err) {
      if (!(err instanceof KeaCommandError)) throw err
      delete st.pid
      return failedSnapshot(name, service, time, bucket, err.kind, err.message)
    }
  }

  /** Polls one server once: snapshots stored, alerts evaluated, stored and sent. */
  async pollOnce (client: KeaControlClient): Promise<PollResult> {
    this.counters.polls++
    const snapshots = await this.snapshot(client)
    const alerts = snapshots.flatMap((s) => this.alerts.evaluate(s))
    for (const s of snapshots) {
      if (s.state !== 'up') {
        this.counters.failures++
        this.log.error(LOG_CODES.keaUnreachable, 'Kea server did not answer; recorded as unreachable.', { server: s.server, service: s.service, error: s.error?.message })
      }
    }
    if (this.store !== undefined) {
      await this.store.snapshots.write(snapshots)
      if (alerts.length > 0) await this.store.write(alerts.map(alertEvent))
    }
    this.counters.snapshots += snapshots.length
    this.counters.alerts += alerts.length
    for (const a of alerts) {
      this.log.info('Pool depletion alert.', { ...a })
      this.webhook?.send(a)
    }
    return { snapshots, alerts }
  }

  /** Kea's current leases (lease_cmds, paged) as kea-state intervals in lease history. */
  async seedLeases (client: KeaControlClient): Promise<number> {
    if (this.store === undefined) return 0
    let created = 0
    for (const service of client.cfg.services) {
      const family = service === 'dhcp4' ? 4 : 6
      const all: Array<Record<string, unknown>> = []
      let from = 'start'
      for (let page = 0; page < MAX_LEASE_PAGES; page++) {
        const a = await client.command(`lease${family}-get-page`, service, { from, limit: LEASE_PAGE })
        if (a.result === 3) break
        if (a.result !== 0) {
          this.log.error(LOG_CODES.keaUnreachable, 'Kea did not list its leases (is the lease_cmds hook loaded?).', { server: client.cfg.name, service, error: a.text })
          break
        }
        const leases = (a.arguments?.leases ?? []) as Array<Record<string, unknown>>
        all.push(...leases)
        const last = leases[leases.length - 1]?.['ip-address']
        if (leases.length < LEASE_PAGE || typeof last !== 'string') break
        from = last
      }
      // A server in a lease domain seeds the domain's history.
      const scope = this.store.leases.domains?.scopeOf(client.cfg.name) ?? client.cfg.name
      const r = await seedKeaState(this.store.leases, memfileIntervals(rowsFromLeaseCommand(all, family), scope), scope)
      created += r.created
    }
    this.counters.leasesSeeded += created
    return created
  }

  /** Runs until `signal` aborts. */
  async run (signal: AbortSignal): Promise<void> {
    if (this.store !== undefined) {
      try { this.alerts.prime(await this.store.snapshots.latest()) } catch { /* a fresh store */ }
    }
    await Promise.all(this.clients.map(async (c) => { await this.loop(c, signal) }))
    await this.webhook?.flush()
  }

  private async loop (client: KeaControlClient, signal: AbortSignal): Promise<void> {
    // Polls on the interval; while the server is down, the wait doubles up to MAX_BACKOFF_MS.
    const backoff = new Backoff({ initialMs: client.cfg.intervalMs, maxMs: Math.max(MAX_BACKOFF_MS, client.cfg.intervalMs), jitter: 0.1 })
    let nextLeases = 0
    while (!signal.aborted) {
      let ok = false
      try {
        const r = await this.pollOnce(client)
        ok = r.snapshots.every((s) => s.state === 'up')
        if (ok && client.cfg.leasesIntervalMs !== undefined && this.now() >= nextLeases) {
          nextLeases = this.now() + client.cfg.leasesIntervalMs
          await this.seedLeases(client).catch((err: Error) => {
            this.log.error(LOG_CODES.keaUnreachable, 'Lease seeding failed; will try again.', { server: client.cfg.name, error: err })
          })
        }
      } catch (err) {
        this.log.error(LOG_CODES.storeWrite, 'Storing a Kea snapshot failed; will poll again.', { server: client.cfg.name, error: err })
      }
      // Consecutive failures after a success wait 2, 4, 8 … intervals.
      if (ok) backoff.reset()
      await backoff.sleep(signal)
    }
  }
}
